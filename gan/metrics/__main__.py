"""`python -m gan.metrics ...` is `reelgan-metrics ...`."""
from gan.metrics.cli import metrics_main

if __name__ == "__main__":
    metrics_main()
