"""Every presenter scene and every shareable setting fits the components of the real app."""
import pytest

from components import scenes
from components import share
from components.registry import share_params


@pytest.fixture(scope="module")
def built():
    from app import build_demo
    from components.context import AppContext

    captured = {}
    original = AppContext.__init__

    def keep(self, *args, **kwargs):
        original(self, *args, **kwargs)
        captured["ctx"] = self

    AppContext.__init__ = keep
    try:
        demo = build_demo()
    finally:
        AppContext.__init__ = original
    return demo, captured["ctx"]


def test_share_params_exist_in_every_tab(built):
    _, ctx = built
    pairs = dict(share.collect(ctx))
    for key, names in share_params().items():
        for name in names:
            assert f"{key}.{name}" in pairs, f"{key} tab has no component {name!r}"


@pytest.mark.parametrize("scene", scenes.SCENES, ids=[s.title for s in scenes.SCENES])
def test_scene_values_fit_components(built, scene):
    _, ctx = built
    pairs = dict(share.collect(ctx))
    for name, raw in scene.params.items():
        if name == "tab":
            assert raw in ctx.extra
            continue
        assert name in pairs, f"{scene.title}: no component {name}"
        assert share._convert(pairs[name], raw) is not None, f"{scene.title}: {name}={raw!r} does not fit"
