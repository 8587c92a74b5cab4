"""`build_prompt`: adult age always stated, deterministic, length-capped, reference vs photo wording."""

from __future__ import annotations

import pytest

from imaging.prompt import MAX_PROMPT_CHARS, AvatarTraits, build_prompt

MIA = AvatarTraits(
    name="Mia",
    gender="female",
    age=27,
    nationality="Brazilian",
    appearance="long wavy dark hair,   brown eyes,\n freckles, athletic build",
    personality="playful",
)


def _traits(**changes: object) -> AvatarTraits:
    values = {
        "name": MIA.name,
        "gender": MIA.gender,
        "age": MIA.age,
        "nationality": MIA.nationality,
        "appearance": MIA.appearance,
        "personality": MIA.personality,
    }
    values.update(changes)
    return AvatarTraits(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["reference", "photo"])
def test_adult_age_is_always_stated(kind: str) -> None:
    """Both kinds state the explicit adult age."""
    scene = None if kind == "reference" else "reading on a balcony"
    assert "a 27-year-old adult woman" in build_prompt(MIA, scene, kind=kind)  # type: ignore[arg-type]


def test_deterministic() -> None:
    """The same input gives the same prompt."""
    assert build_prompt(MIA, "at the beach", kind="photo") == build_prompt(MIA, "at the beach", kind="photo")
    assert build_prompt(MIA, None, kind="reference") == build_prompt(MIA, None, kind="reference")


@pytest.mark.parametrize("age", [19, 16, 0, -1])
def test_rejects_under_age(age: int) -> None:
    """An age below 20 raises ValueError, whatever the kind."""
    with pytest.raises(ValueError, match="at least 20"):
        build_prompt(_traits(age=age), None, kind="reference")
    with pytest.raises(ValueError, match="at least 20"):
        build_prompt(_traits(age=age), "a park", kind="photo")


def test_age_twenty_is_accepted() -> None:
    """Age 20 is the youngest accepted."""
    assert "a 20-year-old adult woman" in build_prompt(_traits(age=20), None, kind="reference")


def test_reference_is_a_neutral_portrait() -> None:
    """The reference prompt asks for a plain, well-lit head-and-shoulders portrait describing the avatar."""
    prompt = build_prompt(MIA, None, kind="reference")
    assert "head-and-shoulders portrait" in prompt
    assert "plain light grey background" in prompt
    assert "Brazilian" in prompt
    assert "long wavy dark hair, brown eyes, freckles, athletic build" in prompt
    assert "reference image" not in prompt


def test_reference_takes_no_scene() -> None:
    """A scene for a reference portrait is a caller error."""
    with pytest.raises(ValueError, match="no scene"):
        build_prompt(MIA, "at a party", kind="reference")


def test_photo_is_the_same_person_in_the_scene() -> None:
    """The photo prompt points at the reference image and includes the scene."""
    prompt = build_prompt(MIA, "  sitting at a   cafe\nin Lisbon ", kind="photo")
    assert prompt.startswith("Photorealistic photograph of the same woman as in the reference image")
    assert "Scene: sitting at a cafe in Lisbon." in prompt
    assert "head-and-shoulders" not in prompt


def test_photo_without_scene_gets_a_default() -> None:
    """A photo without a scene still gets a neutral everyday scene."""
    assert "Scene: a natural, candid everyday moment." in build_prompt(MIA, None, kind="photo")


def test_whitespace_is_collapsed_and_name_left_out() -> None:
    """No runs of whitespace survive and the avatar's name is not in the prompt."""
    for prompt in (build_prompt(MIA, None, kind="reference"), build_prompt(MIA, "x\t\ty", kind="photo")):
        assert "  " not in prompt and "\n" not in prompt and "\t" not in prompt
        assert "Mia" not in prompt


@pytest.mark.parametrize(
    ("gender", "noun"), [("male", "man"), ("Woman", "woman"), ("girl", "woman"), ("non-binary", "non-binary person")]
)
def test_gender_wording(gender: str, noun: str) -> None:
    """Gender maps to an adult noun ("girl" becomes "woman")."""
    assert f"a 27-year-old adult {noun}" in build_prompt(_traits(gender=gender), None, kind="reference")


def test_length_is_capped_keeping_the_age() -> None:
    """Over-long appearance and scene are trimmed to the cap; the age statement stays."""
    long_traits = _traits(appearance="very detailed freckles " * 200)
    long_scene = "walking through a crowded night market " * 100
    for prompt in (
        build_prompt(long_traits, None, kind="reference"),
        build_prompt(long_traits, long_scene, kind="photo"),
        build_prompt(MIA, long_scene, kind="photo"),
    ):
        assert len(prompt) <= MAX_PROMPT_CHARS
        assert "a 27-year-old adult woman" in prompt
        assert prompt.endswith("No text, no watermark.")
    photo = build_prompt(long_traits, long_scene, kind="photo")
    assert "Scene: walking through a crowded night market" in photo
    assert "Appearance: very detailed freckles" in photo


def test_short_prompts_are_untouched() -> None:
    """A prompt under the cap keeps the full appearance and scene."""
    prompt = build_prompt(MIA, "at the beach at sunset", kind="photo")
    assert "Scene: at the beach at sunset." in prompt
    assert "Appearance: long wavy dark hair, brown eyes, freckles, athletic build." in prompt
