"""Train reelgan's own networks (the metrics' offline video features, the analysis' object classifiers) with their
fixed seeds (the store: gan/trained_nets.py).

They are trained automatically on first use and cached; this command does it ahead of time, prints the
held-out scores, and with --ship writes the small weights files shipped in gan/assets/.

\b
Examples:
  python -m gan.trained_nets_cli --dataset digits
  python -m gan.trained_nets_cli --dataset digits --dataset shapes --ship
"""
from __future__ import annotations

import json

import click


@click.command(help=__doc__)
@click.option("--dataset", "datasets", type=click.Choice(["digits", "shapes"]), multiple=True,
              default=("digits", "shapes"), show_default=True, help="Built-in dataset(s).")
@click.option("--net", "nets", type=click.Choice(["offline", "classifier"]), multiple=True,
              default=("offline", "classifier"), show_default=True, help="Which network(s).")
@click.option("--ship", is_flag=True, help="Write gan/assets/<net>_<dataset>.pt (for the repository).")
def main(datasets, nets, ship):
    from gan import trained_nets
    from gan.analysis.classifier_train import classifier_recipe, train_classifier
    from gan.metrics.offline import recipe as offline_recipe
    from gan.metrics.offline_train import train_offline_net
    makers = {"offline": (offline_recipe, train_offline_net), "classifier": (classifier_recipe, train_classifier)}
    for dataset in datasets:
        for net in nets:
            make_recipe, train_fn = makers[net]
            recipe = make_recipe(dataset)
            if ship:
                state, scores = train_fn(recipe)
                path = trained_nets.export_asset(net, dataset, recipe, state, scores)
                click.echo(f"{net} {dataset}: wrote {path} ({path.stat().st_size / 1e6:.2f} MB) {json.dumps(scores)}")
            else:
                _, info = trained_nets.load_or_train(net, dataset, recipe, train_fn)
                click.echo(f"{net} {dataset}: {info['file']} {json.dumps(info['scores'])}")


if __name__ == "__main__":
    main()
