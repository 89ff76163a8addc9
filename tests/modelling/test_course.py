"""Training that stalls changes course: a model rigged never to learn goes through every recovery,
ends on the per-position head, reads, and says so in its result, its checkpoint and its model card."""
import pytest
from conftest import make_config

from tasks.build_shards import build_shards
from tasks.encode_labels import encode_labels
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.modelling.architectures import Crnn, get_architecture, register_architecture
from tasks.modelling.architectures.base import ARCHITECTURES
from tasks.modelling.course import has_dropout, next_recovery, without_dropout
from tasks.publish import publish
from tasks.store import LocalStore
from tasks.train import train


class NeverLearns(Crnn):
    """The crnn with dropout, compiled with a learning rate of 0: it can only stall."""

    name = "never-learns"

    def build(self, height, width, max_length, num_classes, train_images):
        import keras

        from tasks.modelling.architectures.crnn import build_network, ctc_loss

        model = build_network(height, width, num_classes, dropout=True)
        model.compile(optimizer=keras.optimizers.Adam(0.0), loss=ctc_loss)
        return model


@pytest.fixture
def never_learns():
    yield register_architecture(NeverLearns())
    ARCHITECTURES.unregister("never-learns")


@pytest.mark.long_training  # 12 epochs on 300 captchas, four models built
def test_a_stalled_model_changes_course_until_it_reads(never_learns, tmp_path):
    store = LocalStore(tmp_path / "store")
    cfg = make_config(store, arch="never-learns", epochs=12, stall_epochs=1, batch_size=16,
                      source="synthetic://?count=300&length=3&alphabet=ABCD&style=plain&width=72&height=24&seed=3")
    for stage in (ingest, encode_labels, build_shards):
        stage(cfg, store)
    trained = train(cfg, store, cache_dir=tmp_path / "cache")
    assert [change["action"] for change in trained["course"]] == ["without-dropout", "fresh-start",
                                                                  "per-position-head"]
    # Dropout goes after 1 epoch; changes that throw the weights away wait twice as long.
    assert [change["epoch"] for change in trained["course"]] == [1, 3, 5]
    assert [change["reason"].split(" of ")[0] for change in trained["course"]] == [
        "no reading after 1 epochs", "no reading after 2 epochs", "no reading after 2 epochs"]
    assert trained["arch"] == "cnn" and trained["epochs"] == 12
    assert store.get_json(trained["metadata"])["arch"] == "cnn"
    assert store.get_json(f"runs/{cfg.run_key}/checkpoint.json")["course"] == trained["course"]

    evaluated = evaluate(cfg, store, tmp_path / "cache")
    assert evaluated["full_accuracy"] > 0
    published = publish(cfg, store)
    card = store.get_bytes(f"models/{published['version']}/model_card.md").decode()
    assert "## Course of training" in card and "switched to the per-position head" in card
    assert "Architecture: `cnn`" in card


def test_recoveries_apply_only_where_they_can(tmp_path):
    crnn = get_architecture("crnn").build(32, 96, 4, 11, 100)  # a small set: built with dropout
    switched_off = get_architecture("crnn").build(32, 96, 4, 11, 100)
    assert has_dropout(crnn) and not has_dropout(without_dropout(switched_off))
    assert next_recovery(switched_off, "crnn", [], [4]) == "fresh-start"
    assert next_recovery(crnn, "crnn", [], [4]) == "without-dropout"
    assert next_recovery(crnn, "crnn", ["without-dropout"], [4]) == "fresh-start"
    assert next_recovery(crnn, "crnn", ["without-dropout", "fresh-start"], [4]) == "per-position-head"
    assert next_recovery(crnn, "crnn", ["without-dropout", "fresh-start"], [3, 4]) is None  # lengths vary
    cnn = get_architecture("cnn").build(32, 96, 4, 11, 100)
    assert next_recovery(cnn, "cnn", ["fresh-start"], [4]) is None


def test_a_model_leaving_the_plateau_is_left_alone():
    """Validation losses of the style suite's runs at the epochs before the watch decides: a wide style
    stuck on its plateau (stalled), and a mixed-case style leaving it, slowly then fast, a few epochs
    before it first read (left alone, but not for ever)."""
    import keras

    from tasks.modelling.course import leaving_plateau, stall_watch

    stuck = [23.03, 23.01, 23.03, 23.00, 22.97]
    slowly = [11.85, 11.63, 11.60, 11.44, 11.26]
    fast = [11.50, 11.03, 10.66, 10.04, 8.50]
    assert not leaving_plateau(stuck) and leaving_plateau(slowly) and leaving_plateau(fast)
    assert not leaving_plateau(fast[-3:])  # too few epochs to tell
    for losses, stalled in ((stuck, True), (slowly, False), (fast, False), (slowly + [11.2] * 6, True)):
        watch = stall_watch(5)
        watch.set_model(keras.Sequential([keras.layers.Input((1,)), keras.layers.Dense(1)]))
        for epoch, loss in enumerate(losses):
            watch.on_epoch_end(epoch, {"val_loss": loss, "accuracy": 0.0, "val_accuracy": 0.0})
        assert watch.stalled is stalled, losses


def test_a_model_learning_by_heart_gets_stronger_augmentation_once():
    import keras

    from tasks.modelling.augment import Augmentation
    from tasks.modelling.course import GAP_EPOCHS, STRONGER_AUGMENTATION, generalisation_watch, restarted

    inputs = keras.layers.Input((8, 8, 1))
    model = keras.Model(inputs, Augmentation()(inputs))
    layer = model.layers[-1]
    layer.strength.assign(1.0)
    changes = []
    watch = generalisation_watch(lambda *change: changes.append(change))
    watch.set_model(model)
    apart, close = {"accuracy": 0.6, "val_accuracy": 0.1}, {"accuracy": 0.6, "val_accuracy": 0.5}
    for epoch, logs in enumerate([apart] * (GAP_EPOCHS - 1) + [close] + [apart] * (GAP_EPOCHS - 1)):
        watch.on_epoch_end(epoch, logs)
    assert not changes and float(layer.strength.numpy()) == 1.0  # never GAP_EPOCHS in a row
    watch.on_epoch_end(2 * GAP_EPOCHS - 1, apart)
    assert float(layer.strength.numpy()) == STRONGER_AUGMENTATION
    assert [change[:2] for change in changes] == [(2 * GAP_EPOCHS, "stronger-augmentation")]
    assert "read 60% and validation 10%" in changes[0][2]
    for epoch in range(2 * GAP_EPOCHS, 4 * GAP_EPOCHS):
        watch.on_epoch_end(epoch, apart)
    assert len(changes) == 1  # once a run
    assert not restarted([{"action": "stronger-augmentation"}]) and restarted([{"action": "fresh-start"}])
