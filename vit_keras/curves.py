"""Training curves: loss and accuracy per epoch from a run's `metrics.csv`, as a PNG."""

import csv
import pathlib


def read_metrics(metrics_csv):
    """{column: [float, ...]} from a `keras.callbacks.CSVLogger` file."""
    path = pathlib.Path(metrics_csv)
    if not path.is_file():
        raise FileNotFoundError(f"metrics_csv: {path} does not exist.")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"metrics_csv: {path} holds no epochs.")
    columns = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(float("nan"))
    return columns


def plot_training_curves(metrics_csv, png_path):
    """Plot loss and accuracy (train and validation) against epoch into `png_path`; return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    columns = read_metrics(metrics_csv)
    epochs = [e + 1 for e in columns.get("epoch", range(len(next(iter(columns.values())))))]
    panels = [(m, [k for k in (m, f"val_{m}") if k in columns]) for m in ("loss", "accuracy")]
    panels = [(m, keys) for m, keys in panels if keys]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5 * max(1, len(panels)), 3.6), squeeze=False)
    for ax, (metric, keys) in zip(axes[0], panels):
        for key in keys:
            ax.plot(
                epochs,
                columns[key],
                marker="o",
                markersize=3,
                label="validation" if key.startswith("val_") else "train",
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    png_path = pathlib.Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
