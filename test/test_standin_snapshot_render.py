"""The snapshot renderer draws every layer it is given (checked on the pixels, not just 'a file exists')."""
import numpy as np
from matplotlib.image import imread

from rs_diffuser_ros.standin.snapshot_render import Region, Scene, render_scene


def scene(**overrides):
    occupancy = np.zeros((40, 60), dtype=np.int8)
    occupancy[:, 30] = 100  # a wall at x = 3 m
    base = dict(occupancy=occupancy, resolution=0.1, origin=(0.0, 0.0),
                regions=[Region("circle", 1.5, 2.0, (1.0, 1.0), rgba=(1.0, 0.0, 1.0, 1.0))],
                robot=(0.5, 0.5, 0.3), goal=(5.0, 3.5),
                plan=np.array([[0.5, 0.5], [1.0, 1.0], [2.0, 1.2]]),
                candidates=[np.array([[0.5, 0.5], [2.0, 3.0]]), np.array([[0.5, 0.5], [3.0, 0.2]])],
                risk_values=np.array([-4.0, 1.0]), title="alpha=0.05")
    base.update(overrides)
    return Scene(**base)


def magenta_pixels(path):
    image = imread(path)[..., :3]
    return int(np.sum((image[..., 0] > 0.9) & (image[..., 1] < 0.1) & (image[..., 2] > 0.9)))


def red_pixels(path):
    image = imread(path)[..., :3]
    return int(np.sum((image[..., 0] > 0.75) & (image[..., 1] < 0.4) & (image[..., 2] < 0.4)))


def green_pixels(path):
    image = imread(path)[..., :3]
    return int(np.sum((image[..., 1] > 0.6) & (image[..., 0] < 0.45) & (image[..., 2] < 0.5)))


def tinted_pixels(path):
    """Pixels tinted red over white or grey (red clearly above green, green and blue alike)."""
    image = imread(path)[..., :3]
    return int(np.sum((image[..., 0] - image[..., 1] > 0.08) & (np.abs(image[..., 1] - image[..., 2]) < 0.05)))


def test_render_writes_a_png_with_the_layers(tmp_path):
    path = tmp_path / "full.png"
    render_scene(scene(), path)
    image = imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert magenta_pixels(path) > 50  # the risky region is drawn in its marker colour
    assert red_pixels(path) > 50 and green_pixels(path) > 50  # worst candidate red, best green, colour bar


def test_render_without_regions_has_no_region_colour(tmp_path):
    path = tmp_path / "bare.png"
    render_scene(scene(regions=[], candidates=[], risk_values=None), path)
    assert magenta_pixels(path) == 0
    assert red_pixels(path) == 0 and green_pixels(path) == 0  # no candidates, no colour bar


def test_render_copes_with_only_a_map(tmp_path):
    path = tmp_path / "map_only.png"
    render_scene(Scene(occupancy=np.zeros((10, 10), dtype=np.int8)), path)
    assert path.stat().st_size > 1000


def test_render_draws_the_risk_map_in_red_where_the_hazard_is_and_stronger_where_higher(tmp_path):
    risk = np.zeros((40, 60), dtype=np.int8)
    risk[10:30, 35:55] = 100  # 2 m x 2 m right of the wall
    bare = dict(regions=[], candidates=[], risk_values=None, plan=None, robot=None, goal=None)
    path = tmp_path / "risk.png"
    render_scene(scene(risk_map=risk, risk_resolution=0.1, **bare), path)
    high = red_pixels(path)
    assert high > 2000  # a 2 m square on a 6 m x 4 m map
    image = imread(path)[..., :3]
    _, cols = np.nonzero((image[..., 0] > 0.75) & (image[..., 1] < 0.4) & (image[..., 2] < 0.4))
    width = image.shape[1]
    assert cols.min() > width * 0.45, "the red square lies right of the map's middle (x > 3 m)"

    risk[10:30, 35:55] = 5  # a low hazard: drawn, but fainter (pink, not red)
    render_scene(scene(risk_map=risk, risk_resolution=0.1, **bare), tmp_path / "low.png")
    assert red_pixels(tmp_path / "low.png") == 0
    assert tinted_pixels(tmp_path / "low.png") > 2000

    render_scene(scene(risk_map=np.zeros_like(risk), risk_resolution=0.1, **bare), tmp_path / "none.png")
    assert red_pixels(tmp_path / "none.png") == 0 and tinted_pixels(tmp_path / "none.png") == 0
