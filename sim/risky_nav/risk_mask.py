"""A layout's risk layer as a Nav2 map_server mask: an 8-bit PGM image plus the YAML map_server loads.

    python -m risky_nav.risk_mask --layout default --out runs/risk_default   # writes .pgm + .yaml

The YAML uses map_server's `mode: raw`, in which a pixel's grey value is the published cell value
(0..100; above 100 reads as -1, unknown), so the hazard levels of `occupancy.risk_grid` come out of
map_server exactly; `scale` mode would re-quantise them. Image row 0 is the top of the map (highest
y), as map_server reads images. How to serve it on /risk_map: docs/ros.md, "Risk zones on a real robot".
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from risky_nav.layout import load_layout
from risky_nav.occupancy import OccupancyGrid, risk_grid


def write_risk_mask(grid: OccupancyGrid, stem: Path | str) -> tuple[Path, Path]:
    """Write `grid` (hazard 0..100) as <stem>.pgm and <stem>.yaml; returns both paths."""
    data = np.asarray(grid.data)
    if data.ndim != 2 or data.size == 0 or data.min() < 0 or data.max() > 100:
        raise ValueError(f"risk mask needs a 2-D grid of hazard levels 0..100, got shape {data.shape}"
                         + (f", values [{data.min()}, {data.max()}]" if data.size else ""))
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    image, meta = stem.with_suffix(".pgm"), stem.with_suffix(".yaml")
    height, width = data.shape
    pixels = np.flipud(data).astype(np.uint8)  # row 0 of the image is the top of the map
    image.write_bytes(f"P5\n{width} {height}\n255\n".encode("ascii") + pixels.tobytes())
    meta.write_text(yaml.safe_dump({
        "image": image.name,
        "mode": "raw",  # grey value = cell value: the hazard levels unchanged
        "resolution": float(grid.resolution),
        "origin": [float(grid.origin_x), float(grid.origin_y), 0.0],
        "negate": 0,
        "occupied_thresh": 0.65,  # required by map_server's loader; unused in raw mode
        "free_thresh": 0.25,
    }, sort_keys=False))
    return image, meta


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m risky_nav.risk_mask", description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", default="default", help="layout name or path to a layout YAML")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix (.pgm and .yaml)")
    parser.add_argument("--resolution", type=float, default=0.05, help="cell size, m (the sim's grid_resolution)")
    args = parser.parse_args(argv)
    layout = load_layout(args.layout)
    grid = risk_grid(layout, args.resolution)
    image, meta = write_risk_mask(grid, args.out)
    levels = sorted(int(v) for v in np.unique(grid.data) if v > 0)
    print(f"{layout.name}: wrote {image} ({grid.width}x{grid.height} at {grid.resolution:g} m) and {meta}; "
          f"hazard levels {levels or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
