"""Data stage on real data: the Debian Fashion-MNIST files, an image folder of real photos, the OOD sets."""

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from conftest import tiny_dataset
from weightscape.data.canonical import balanced_indices, load_split, save_split, training_split
from weightscape.data.ood import make_ood_sets
from weightscape.data.prepare import prepare_dataset, prepare_judge_split
from weightscape.data.sources import SOURCES, SourceError
from weightscape.io import read_json
from weightscape.settings import Dataset


def test_fashion_mnist_reader_reads_the_real_files(fashion_root):
    raw = SOURCES["fashion_mnist"].load({"root": str(fashion_root)})
    assert raw.train_images.shape == (60000, 28, 28, 1) and raw.train_images.dtype == np.uint8
    assert raw.test_images.shape == (10000, 28, 28, 1)
    assert np.bincount(raw.train_labels).tolist() == [6000] * 10
    assert np.bincount(raw.test_labels).tolist() == [1000] * 10
    assert raw.classes[0] == "T-shirt/top" and raw.classes[9] == "Ankle boot"
    # real images, not zeros: a trouser (class 1) is taller than wide, and pixels span the full range
    assert raw.train_images.max() == 255 and 60 < raw.train_images.mean() < 90


def test_prepare_writes_balanced_disjoint_seeded_splits(tmp_path, fashion_root):
    summary = prepare_dataset(tiny_dataset(split_seed=3), tmp_path / "a")
    assert summary["sizes"] == {"train": 80, "val": 20, "test": 60}
    assert read_json(tmp_path / "a" / "classes.json")["classes"] == summary["classes"]
    train_x, train_y = load_split(tmp_path / "a" / "train.npz")
    val_x, val_y = load_split(tmp_path / "a" / "val.npz")
    assert np.bincount(train_y).tolist() == [8] * 10 and np.bincount(val_y).tolist() == [2] * 10
    train_rows = {img.tobytes() for img in train_x}
    assert not any(img.tobytes() in train_rows for img in val_x)
    prepare_dataset(tiny_dataset(split_seed=3), tmp_path / "b")
    prepare_dataset(tiny_dataset(split_seed=4), tmp_path / "c")
    assert np.array_equal(load_split(tmp_path / "b" / "train.npz")[0], train_x)
    assert not np.array_equal(load_split(tmp_path / "c" / "train.npz")[0], train_x)


def test_resample_per_seed_gives_each_seed_its_own_balanced_training_subset(tmp_path, fashion_root):
    fixed = tiny_dataset(split_seed=3)
    assert fixed.subset_params() == {} and not (tmp_path / "fixed" / "pool.npz").exists()
    prepare_dataset(fixed, tmp_path / "fixed")
    assert training_split(tmp_path / "fixed" / "train.npz", fixed.subset_params(), 5)[0].tobytes() == \
        load_split(tmp_path / "fixed" / "train.npz")[0].tobytes()  # off: every seed trains on train.npz
    dataset = tiny_dataset(split_seed=3, resample_per_seed=True)
    summary = prepare_dataset(dataset, tmp_path / "a")
    assert summary["sizes"]["pool"] == 60000 - 20  # every training image but the validation ones
    pool = tmp_path / "a" / "pool.npz"
    val_rows = {img.tobytes() for img in load_split(tmp_path / "a" / "val.npz")[0]}
    subsets = {seed: training_split(pool, dataset.subset_params(), seed) for seed in (0, 1)}
    for images, labels in subsets.values():
        assert np.bincount(labels).tolist() == [8] * 10
        assert not any(img.tobytes() in val_rows for img in images)
    assert not np.array_equal(subsets[0][0], subsets[1][0])
    assert np.array_equal(training_split(pool, dataset.subset_params(), 1)[0], subsets[1][0])  # seeded
    # the train.npz of the split seed is unchanged, for what does not train on a seed's data
    assert np.array_equal(load_split(tmp_path / "a" / "train.npz")[0], load_split(tmp_path / "fixed" / "train.npz")[0])


def test_balanced_indices_respects_exclusion_and_reports_shortage():
    labels = np.repeat(np.arange(3), 5)
    rng = np.random.default_rng(0)
    first = balanced_indices(labels, 3, rng)
    second = balanced_indices(labels, 2, rng, exclude=first)
    assert not set(first) & set(second)
    assert np.bincount(labels[second]).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="class 0 has 2 images, 3 requested"):
        balanced_indices(labels, 3, rng, exclude=first)


def _photo_folder(root, layout_split: bool):
    photos = {"cat": skdata.chelsea(), "coffee": skdata.coffee(), "astronaut": skdata.astronaut()}
    for name, photo in photos.items():
        for i in range(5):
            crop = photo[i * 20: i * 20 + 200, i * 30: i * 30 + 200]
            folder = root / ("train" if i < 4 else "test") / name if layout_split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop).save(folder / f"{i}.png")


@pytest.mark.parametrize("layout_split", [True, False])
def test_imagefolder_reads_and_resizes_real_photos(tmp_path, layout_split):
    _photo_folder(tmp_path / "photos", layout_split)
    config = {"name": "photos", "source": "imagefolder", "root": str(tmp_path / "photos"), "image_size": 24,
              "train_per_class": 3, "val_per_class": 1, "test_per_class": 1, "split_seed": 0,
              "resample_per_seed": False}
    assert SOURCES["imagefolder"].per_class(config) == (4, 1)
    summary = prepare_dataset(Dataset.from_config({**config, "download": False}), tmp_path / "out")
    assert summary["classes"] == ["astronaut", "cat", "coffee"]
    images, labels = load_split(tmp_path / "out" / "train.npz")
    assert images.shape == (9, 24, 24, 3) and np.bincount(labels).tolist() == [3, 3, 3]
    # the cat photo is mostly brown-gray, the astronaut photo has a white suit: the images are the real ones
    assert images[labels == 0].mean() != pytest.approx(images[labels == 1].mean(), abs=1)


def test_judge_split_takes_real_training_images_up_to_the_class_size_and_never_test_ones(tmp_path):
    _photo_folder(tmp_path / "photos", layout_split=True)  # 4 training and 1 test crop per class
    config = {"name": "photos", "source": "imagefolder", "root": str(tmp_path / "photos"), "image_size": 24}
    dataset = Dataset.from_config({**config, "download": False, "train_per_class": 1, "val_per_class": 0,
                                   "test_per_class": 1, "split_seed": 0, "resample_per_seed": False})
    summary = prepare_judge_split(dataset.source_options(), 10, 0, tmp_path / "judge.npz")
    assert summary == {"per_class": 4, "n": 12}  # 10 asked, every class has 4: all of them
    images, labels = load_split(tmp_path / "judge.npz")
    raw = SOURCES["imagefolder"].load(config)
    train_rows = {img.tobytes() for img in raw.train_images}
    assert all(img.tobytes() in train_rows for img in images)
    assert not {img.tobytes() for img in raw.test_images} & {img.tobytes() for img in images}
    assert np.bincount(labels).tolist() == [4, 4, 4]


def test_judge_split_is_a_seeded_balanced_draw(tmp_path, fashion_root):
    config = tiny_dataset()
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        prepare_judge_split(config.source_options(), 30, seed, tmp_path / f"{name}.npz")
    (a, labels), (b, _), (c, _) = (load_split(tmp_path / f"{n}.npz") for n in "abc")
    assert np.bincount(labels).tolist() == [30] * 10
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_imagefolder_with_one_class_is_rejected(tmp_path):
    (tmp_path / "only").mkdir()
    Image.fromarray(skdata.coffee()).save(tmp_path / "only" / "a.png")
    with pytest.raises(SourceError, match="at least two class folders"):
        SOURCES["imagefolder"].per_class({"root": str(tmp_path)})


def test_save_split_rejects_non_canonical_arrays(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        save_split(tmp_path / "x.npz", np.zeros((2, 4, 4, 3), np.float32), np.zeros(2))
    with pytest.raises(ValueError, match="labels"):
        save_split(tmp_path / "x.npz", np.zeros((2, 4, 4, 3), np.uint8), np.zeros(3))
    assert not list(tmp_path.iterdir())


def test_ood_sets_hold_every_severity_of_a_balanced_sample(tmp_path, fashion_root):
    prepare_dataset(tiny_dataset(), tmp_path)
    ood = {"corruptions": ["gaussian_noise", "contrast"], "severities": [1, 5], "test_per_class": 2, "seed": 0}
    out = {name: tmp_path / "ood" / f"{name}.npz" for name in ood["corruptions"]}
    make_ood_sets(tmp_path / "test.npz", ood, out)
    clean, _ = load_split(tmp_path / "test.npz")
    for name, path in out.items():
        with np.load(path) as archive:
            images, labels, severities = archive["images"], archive["labels"], archive["severities"]
        assert images.shape == (2, 20, 28, 28, 1) and images.dtype == np.uint8
        assert np.bincount(labels).tolist() == [2] * 10 and severities.tolist() == [1, 5]
        assert not np.array_equal(images[0], images[1])  # severity 5 is another image than severity 1
    first = np.load(out["gaussian_noise"])["images"]
    make_ood_sets(tmp_path / "test.npz", ood, out)
    assert np.array_equal(np.load(out["gaussian_noise"])["images"], first)  # seeded
