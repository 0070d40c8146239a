"""The tour (issue 31): every presenter scene is a step with its own text, in the scenes' order."""
import pytest

from components.scenes import SCENES
from components.tour import TEXTS, step_text


def test_every_scene_has_a_tour_text_and_steps_follow_the_scenes():
    assert set(TEXTS) == {scene.title for scene in SCENES}
    assert all(len(text) > 40 for text in TEXTS.values())
    for i, scene in enumerate(SCENES):
        text = step_text(i)
        assert text.startswith(f"**Step {i + 1} of {len(SCENES)}: {scene.title}**") and TEXTS[scene.title] in text
    with pytest.raises(ValueError, match="index"):
        step_text(len(SCENES))
