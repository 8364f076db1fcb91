"""Write the example datasets into examples/data/ (offline: nothing is downloaded).

    python examples/make_data.py

- data/breast_cancer.csv: scikit-learn's bundled breast cancer table (569 tumours, 30 measurements,
  ``diagnosis`` = malignant/benign), used by demo.toml and custom_model.py/.toml.
- data/energy_load.csv: two years of synthetic daily electricity load driven by temperature, the day
  of the week and holidays, used by time_split.toml. Rows are dated, so the split must respect time:
  train on the past, validate and test on the future.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cleanfit.pipeline.demo import write_breast_cancer

HERE = Path(__file__).resolve().parent


def write_energy_load(path: Path, days: int = 730, seed: int = 0) -> Path:
    """Daily load (MWh) = base + heating/cooling from temperature (a yearly season) + weekly pattern + noise."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2023-01-01", periods=days, freq="D")
    t = np.arange(days)
    temperature = 12 + 10 * np.sin(2 * np.pi * (t - 110) / 365.25) + rng.normal(0, 3, days)
    weekday = dates.day_of_week.to_numpy()
    holiday = (rng.random(days) < 0.03).astype(int)
    load = (
        500
        + 4.0 * np.abs(temperature - 17)  # heating below, cooling above ~17 °C
        - 40 * (weekday >= 5)
        - 60 * holiday
        + rng.normal(0, 12, days)
    )
    frame = pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d"),
            "temperature": temperature.round(1),
            "weekday": dates.day_name(),
            "holiday": holiday,
            "load": load.round(1),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def main() -> None:
    print(f"wrote {write_breast_cancer(HERE / 'data' / 'breast_cancer.csv')}")
    print(f"wrote {write_energy_load(HERE / 'data' / 'energy_load.csv')}")


if __name__ == "__main__":
    main()
