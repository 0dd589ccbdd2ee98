"""Averages the adapted predictions of several meta-learners (a seed ensemble)."""

import numpy as np

from fewshot.recsys.adapter import TaskPredictor

COMBINES = {"mean": np.mean, "median": np.median}


class EnsembleAdapter(TaskPredictor):
    """Adapts every member to one user and averages their predicted ratings.

    A seed ensemble is the same method trained several times with different
    seeds. Each member (a `fewshot.recsys.adapter.UserAdapter`, with its own
    test-time steps) adapts to the user's support set on its own; the
    ensemble's prediction for a query item is the mean (or the median) of
    the members' predictions. No member is selected, so nothing is tuned on
    the users who judge the ensemble. The per-user cost is the members'
    costs added up.

    Args:
        adapters: the members: callables ``(support_x, support_y, query_x)
            -> [Q]`` such as `UserAdapter` objects.
        combine: ``"mean"`` or ``"median"`` of the members' predictions.

    Example:

    >>> import keras, numpy as np, fewshot
    >>> from fewshot.recsys.adapter import UserAdapter
    >>> from fewshot.recsys.ensemble import EnsembleAdapter
    >>> def member(seed):
    ...     keras.utils.set_random_seed(seed)
    ...     learner = fewshot.MAML(fewshot.models.mlp((3,), (8,), 1), inner_lr=0.1)
    ...     learner.compile(loss="mse")
    ...     return UserAdapter(learner, steps=2)
    >>> members = [member(0), member(1)]
    >>> ensemble = EnsembleAdapter(members)
    >>> x, y = np.ones((4, 3), "float32"), np.ones(4, "float32")
    >>> bool(np.allclose(ensemble(x, y, x), (members[0](x, y, x) + members[1](x, y, x)) / 2))
    True
    """

    def __init__(self, adapters, combine="mean"):
        adapters = list(adapters)
        if not adapters or not all(callable(a) for a in adapters):
            raise ValueError(
                "Invalid value received for argument `adapters`. Expected a non-empty "
                f"list of adapters (callables). Received: adapters={adapters!r}"
            )
        if combine not in COMBINES:
            raise ValueError(
                "Invalid value received for argument `combine`. Expected one of "
                f"{sorted(COMBINES)}. Received: combine={combine!r}"
            )
        self.adapters = adapters
        self.combine = combine

    def member_predictions(self, support_x, support_y, query_x):
        """Each member's predicted ratings of `query_x`: an array ``[members, Q]``."""
        return np.stack([adapter(support_x, support_y, query_x) for adapter in self.adapters])

    def __call__(self, support_x, support_y, query_x):
        """The combined predicted ratings ``[Q]`` of `query_x`."""
        members = self.member_predictions(support_x, support_y, query_x)
        return COMBINES[self.combine](members, axis=0)
