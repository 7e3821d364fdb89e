import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autometa.data import omniglot
from autometa.data._paths import data_root
from autometa.data.omniglot import OmniglotDataset, decode_image, load_omniglot

SIZE = 12  # synthetic images are SIZE x SIZE, so image_size=SIZE decodes them exactly


def png(ink_rows: int) -> bytes:
    """A 1-bit PNG, white with its top ``ink_rows`` rows black."""
    image = Image.new("1", (SIZE, SIZE), 1)
    image.paste(0, (0, 0, SIZE, ink_rows))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_tree(top: Path, alphabets: dict[str, int], n_drawers: int = 3, ink_rows: int = 2) -> Path:
    """An Omniglot-layout folder ``top/<Alphabet>/characterNN/<id>_<drawer>.png``."""
    for alphabet, n_characters in alphabets.items():
        for character in range(1, n_characters + 1):
            folder = top / alphabet / f"character{character:02d}"
            folder.mkdir(parents=True)
            for drawer in range(1, n_drawers + 1):
                (folder / f"{100 + character:04d}_{drawer:02d}.png").write_bytes(png(ink_rows))
    return top


def zip_tree(top: Path, archive: Path) -> Path:
    """``top`` zipped with ``top``'s name as the zip's one top folder, as in the official zips."""
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(top.rglob("*.png")):
            zf.write(file, file.relative_to(top.parent).as_posix())
    return archive


@pytest.fixture
def tree(tmp_path):
    return write_tree(tmp_path / "images_background", {"Greek": 3, "Latin": 2})


def load(sources, tmp_path, image_size=SIZE, **kwargs) -> OmniglotDataset:
    return load_omniglot(sources, image_size=image_size, cache_dir=tmp_path / "cache", **kwargs)


def test_folder_layout_labels_and_order(tree, tmp_path):
    data = load(tree, tmp_path)
    assert len(data) == 15 and data.n_classes == 5
    assert data.images.shape == (15, SIZE, SIZE) and data.images.dtype == np.float32
    assert data.alphabet_names == ["Greek", "Latin"]
    greek, latin = [f"Greek/character0{i}" for i in (1, 2, 3)], ["Latin/character01", "Latin/character02"]
    assert data.class_names == greek + latin
    np.testing.assert_array_equal(data.labels, np.repeat(np.arange(5), 3))
    np.testing.assert_array_equal(data.alphabets, [0] * 9 + [1] * 6)
    np.testing.assert_array_equal(data.drawers, np.tile([1, 2, 3], 5))
    np.testing.assert_array_equal(data.groups, data.alphabets)
    assert not data.rotation.any()
    for array in (data.labels, data.alphabets, data.drawers, data.rotation):
        assert array.dtype == np.int64


def test_zip_and_both_folder_levels_load_the_same(tree, tmp_path):
    archive = zip_tree(tree, tmp_path / "images_background.zip")
    from_top = load(tree, tmp_path, cache=False)
    for source in (archive, tree.parent):
        other = load(source, tmp_path, cache=False)
        np.testing.assert_array_equal(other.images, from_top.images)
        assert other.class_names == from_top.class_names


def test_ink_is_one_and_resizing_stays_in_range(tree):
    data = png(ink_rows=4)
    exact = decode_image(data, image_size=SIZE)
    assert exact.dtype == np.float32
    np.testing.assert_array_equal(exact[:4], 1.0)
    np.testing.assert_array_equal(exact[4:], 0.0)
    small = decode_image(data, image_size=6)
    assert small.shape == (6, 6) and 0.0 <= small.min() and small.max() <= 1.0
    assert small[0].mean() > 0.9 and small[-1].mean() < 0.1


def test_characters_in_two_sources_are_taken_from_the_first(tmp_path):
    first = write_tree(tmp_path / "a" / "images_background_small1", {"Greek": 2, "Balinese": 1}, ink_rows=2)
    second = write_tree(tmp_path / "b" / "images_background_small2", {"Greek": 3, "Tagalog": 1}, ink_rows=6)
    data = load([first, zip_tree(second, tmp_path / "small2.zip"), first], tmp_path)
    assert data.alphabet_names == ["Balinese", "Greek", "Tagalog"]
    assert data.class_names == ["Balinese/character01"] + [f"Greek/character0{i}" for i in (1, 2, 3)] + [
        "Tagalog/character01"
    ]
    greek = data.images[np.isin(data.labels, [1, 2])]
    np.testing.assert_array_equal(greek[:, 2:6], 0.0)  # the first source's 2 ink rows, not the second's 6
    assert data.images[data.labels == 3][:, :6].min() == 1.0  # Greek/character03 only in the second


def test_rotations_make_new_classes(tree, tmp_path):
    plain = load(tree, tmp_path)
    data = load(tree, tmp_path, rotations=True)
    assert data.n_classes == 4 * plain.n_classes and len(data) == 4 * len(plain)
    assert data.class_names[:4] == ["Greek/character01" + s for s in ("", "/rot90", "/rot180", "/rot270")]
    for k in range(4):
        rotated = data.images[data.rotation == 90 * k]
        np.testing.assert_array_equal(rotated, np.rot90(plain.images, k, axes=(1, 2)))
        np.testing.assert_array_equal(data.labels[data.rotation == 90 * k], 4 * plain.labels + k)
        np.testing.assert_array_equal(data.alphabets[data.rotation == 90 * k], plain.alphabets)
        np.testing.assert_array_equal(data.drawers[data.rotation == 90 * k], plain.drawers)
    assert np.all(np.diff(data.labels) >= 0)


def test_subset_alphabets_relabels(tree, tmp_path):
    data = load(tree, tmp_path, rotations=True)
    latin = data.subset_alphabets("Latin")
    assert latin.alphabet_names == ["Latin"] and latin.n_classes == 8 and len(latin) == 24
    assert latin.class_names[0] == "Latin/character01"
    np.testing.assert_array_equal(np.unique(latin.labels), np.arange(8))
    assert not latin.alphabets.any()
    with pytest.raises(ValueError, match=r"'Klingon'.*Greek, Latin"):
        data.subset_alphabets(["Latin", "Klingon"])


def test_second_load_hits_the_cache(tree, tmp_path, monkeypatch):
    first = load(tree, tmp_path)
    [cache_file] = (tmp_path / "cache").glob("*.npz")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(omniglot, "decode_image", no_decoding)
    second = load(tree, tmp_path)
    np.testing.assert_array_equal(second.images, first.images)
    assert second.class_names == first.class_names
    assert list((tmp_path / "cache").iterdir()) == [cache_file]  # no temp file left behind
    with np.load(cache_file, allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)


def test_cache_follows_sources_and_image_size(tree, tmp_path):
    load(tree, tmp_path)
    load(tree, tmp_path, image_size=6)
    image = min(tree.rglob("*.png"))  # the first image: Greek/character01, drawer 1
    image.write_bytes(png(ink_rows=5))
    os.utime(image, ns=(0, 0))
    changed = load(tree, tmp_path)
    assert changed.images[0, :5].min() == 1.0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3


@pytest.mark.parametrize("garbage", [b"", b"not an npz", b"PK\x03\x04 truncated"])
def test_corrupt_cache_is_rebuilt(tree, tmp_path, garbage):
    first = load(tree, tmp_path)
    [cache_file] = (tmp_path / "cache").glob("*.npz")
    cache_file.write_bytes(garbage)
    with pytest.warns(UserWarning, match="unreadable Omniglot cache"):
        rebuilt = load(tree, tmp_path)
    np.testing.assert_array_equal(rebuilt.images, first.images)
    with np.load(cache_file, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["images"], first.images)


def test_no_cache_writes_nothing(tree, tmp_path):
    load(tree, tmp_path, cache=False)
    assert not (tmp_path / "cache").exists()


def test_errors_name_the_path(tmp_path):
    missing = tmp_path / "nowhere.zip"
    with pytest.raises(FileNotFoundError, match="nowhere.zip"):
        load_omniglot(missing, cache=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "images_background.zip").write_bytes(b"")
    with pytest.raises(ValueError, match=r"no Omniglot images in .*empty.*characterNN.*pass each zip"):
        load_omniglot(empty, cache=False)
    no_images = tmp_path / "other.zip"
    with zipfile.ZipFile(no_images, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="other.zip"):
        load_omniglot(no_images, cache=False)
    not_a_zip = tmp_path / "notes.txt"
    not_a_zip.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt is neither a folder nor a zip"):
        load_omniglot(not_a_zip, cache=False)
    with pytest.raises(ValueError, match="image_size"):
        load_omniglot(tmp_path, image_size=0)


def small_background_zips() -> list:
    """The two small background sets of the shared data; skips the test where they are absent."""
    root = data_root()
    zips = [root / "omniglot" / f"images_background_small{i}.zip" for i in (1, 2)] if root else []
    if not zips or not all(z.is_file() for z in zips):
        pytest.skip(f"Omniglot zips not found in {root / 'omniglot' if root else '$AUTOMETA_DATA'}")
    return zips


def test_small_background_zips(tmp_path):
    zips = small_background_zips()
    start = time.perf_counter()
    data = load_omniglot(zips, cache_dir=tmp_path)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    again = load_omniglot(zips, cache_dir=tmp_path)
    warm = time.perf_counter() - start
    print(
        f"\nomniglot small1+small2: {len(data.alphabet_names)} alphabets, {data.n_classes} characters, "
        f"{len(data)} images; cold {cold:.3f} s, warm {warm:.3f} s ({cold / warm:.1f}x)"
    )
    assert (len(data.alphabet_names), data.n_classes, len(data)) == (8, 242, 4840)
    assert data.images.shape == (4840, 28, 28)
    assert np.bincount(data.labels).tolist() == [20] * 242
    assert 0.02 < data.images.mean() < 0.2  # mostly paper: ink really is 1
    np.testing.assert_array_equal(again.images, data.images)
    assert cold >= 5 * warm


@pytest.mark.slow
def test_the_few_shot_benchmark_names_the_learner_options_it_trains_with(tmp_path, capsys):
    from benchmarks import omniglot_fewshot

    zips = small_background_zips()
    rows = omniglot_fewshot.run(zips, algorithms=("matching",), steps=2, n_episodes=3, ways=(5,),
                                learner_options={"matching": {"fce": True}})
    learned = [row for row in rows if row["algorithm"] != "pixel 1-NN"]
    assert [(row["algorithm"], row["n_way"], row["k_shot"]) for row in learned] == [
        ("matching fce=True", 5, 1), ("matching fce=True", 5, 5)]
    assert all(0 <= row["accuracy"] <= 1 for row in rows)
    assert "matching fce=True" in capsys.readouterr().out
