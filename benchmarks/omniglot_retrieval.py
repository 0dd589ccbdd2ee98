"""Task retrieval on Omniglot: does a remembered task make a better start than the meta-initialisation?

    python benchmarks/omniglot_retrieval.py --model runs/omniglot_s21/fomaml_5w1s/best.keras \\
        --data-dir /path/to/omniglot

`--model` is a trained MAML or first-order MAML cell of the Omniglot recipe
(its ``best.keras``). One `fewshot.TaskRetrieval` learner takes its
meta-weights (`fewshot.recipes.omniglot.task_retrieval_from`, as
``fewshot run recipes/omniglot --algorithm task_retrieval --meta-init``
does) and is tested three ways, on the recipe's test episodes (600 N-way
K-shot episodes of the rotated test characters, the recipe's inner steps):

- ``meta-initialisation``: the memory empty, so every task starts from the
  meta-weights, exactly as the source model (the recipe's number for it);
- ``retrieval``: the recipe's memory of 64 validation tasks, each adapted
  with the test's inner steps; a test task starts from the remembered weights
  that fit its support set best (``support_loss``);
- ``retrieval, body only``: the same, but the remembered head is replaced by
  the meta-initialisation's, so only the convolutional layers are retrieved
  (a task's head is tied to that task's order of classes, which a new task
  does not share).

Prints a markdown table: test accuracy (%) with its 95% interval.
"""

import argparse
import pathlib
import sys

import tensorflow as tf

from fewshot.datasets.omniglot import load_omniglot, omniglot_splits
from fewshot.metrics import mean_ci95
from fewshot.recipes import omniglot
from fewshot.recipes.config import load_recipe

RECIPE = pathlib.Path(__file__).resolve().parents[1] / "recipes" / "omniglot"


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Omniglot test accuracy of task retrieval against the meta-initialisation it "
        "starts from, on the recipe's test episodes.",
    )
    parser.add_argument("--model", required=True,
                        help="a trained maml or fomaml cell's model, e.g. runs/omniglot/fomaml_5w1s/best.keras")
    parser.add_argument("--data-dir", default=None,
                        help="folder with images_background.zip and images_evaluation.zip "
                        "(default $FEWSHOT_OMNIGLOT_DIR, else tfds.load('omniglot'))")
    parser.add_argument("--ways", type=_positive_int, default=5, help="N of the test episodes; the model's head (default 5)")
    parser.add_argument("--shots", type=_positive_int, default=1, help="K of the test episodes (default 1)")
    parser.add_argument("--test-episodes", type=_positive_int, default=None,
                        help="test episodes (default the recipe's 600)")
    parser.add_argument("--seed", type=int, default=None, help="the recipe's seed (default 0): episodes and memory")
    parser.add_argument("--recipe", default=str(RECIPE),
                        help="the recipe folder whose settings (split, inner steps, memory size) apply "
                        "(default recipes/omniglot)")
    return parser.parse_args(argv)


def _head_indices(learner):
    """Positions of the head's variables among the backbone's trainable ones."""
    head = learner.backbone.layers[-1]
    names = {v.path for v in head.trainable_variables}
    return [i for i, v in enumerate(learner.backbone.trainable_variables) if v.path in names]


def main(argv=None):
    args = parse_args(argv)
    recipe_args = ["--algorithm", "task_retrieval", "--ways", str(args.ways), "--shots", str(args.shots),
                   "--meta-init", args.model]
    if args.test_episodes is not None:
        recipe_args += ["--test-episodes", str(args.test_episodes)]
    parser = argparse.ArgumentParser()
    omniglot.add_arguments(parser)
    try:
        config = load_recipe(args.recipe)
        if args.seed is not None:
            config["seed"] = args.seed
        s = omniglot.recipe_settings(config, parser.parse_args(recipe_args))
        data = load_omniglot(args.data_dir, resample=s["resample"])
        train_idx, val_idx, test_idx = omniglot_splits(
            data.num_characters, s["validation_characters"], s["train_characters"])
        test_x, test_y = data.arrays(test_idx, rotations=(0, 1, 2, 3) if s["test_rotations"] else (0,))
        learner = omniglot.task_retrieval_from(s, s["meta_init"], test_x.shape[1:])
    except (ValueError, FileNotFoundError) as error:
        print(f"omniglot_retrieval.py: error: {error}", file=sys.stderr)
        return 2

    def accuracy():
        accs = omniglot.evaluate_accuracy(
            learner, test_x, test_y, s["ways"], s["shots"], s["test_episodes"], s,
            seed=s["seed"] + omniglot.TEST_SEED,
        )
        return mean_ci95(100.0 * accs)

    rows = [("meta-initialisation (empty memory)", accuracy())]
    print(f"{rows[-1][0]}: {rows[-1][1][0]:.2f}", flush=True)
    omniglot.fill_memory(learner, omniglot.validation_sampler(s, data, val_idx), s)
    rows.append((f"retrieval (a memory of {learner.memory_size} validation tasks)", accuracy()))
    print(f"{rows[-1][0]}: {rows[-1][1][0]:.2f}", flush=True)
    theta = learner.backbone.trainable_variables
    for i in _head_indices(learner):
        memory = learner.memory_weights[i]
        memory.assign(tf.broadcast_to(theta[i][None], memory.shape))
    rows.append(("retrieval, body only (the meta-initialisation's head)", accuracy()))

    cell = f"{s['ways']}-way {s['shots']}-shot"
    print(f"\nOmniglot {cell}, {s['test_episodes']} test episodes, {s['eval_steps']} inner steps "
          f"at {s['inner_lr']}; meta-weights from {s['meta_init']}\n")
    print(f"| start of adaptation | test accuracy % ({cell}) |")
    print("|---|---|")
    for name, (mean, half) in rows:
        print(f"| {name} | {mean:.2f} ± {half:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
