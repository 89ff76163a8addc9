"""The CRNN architecture: dropout on from the start for small training sets only, switched on once the
model reads for the others, with the same layers and weights either way."""
import keras
import numpy as np


def test_dropout_guards_small_training_sets_from_the_start(trained, tmp_path):
    from tasks.modelling.architectures.crnn import DROPOUT_BELOW_IMAGES, build_network, wants_dropout
    from tasks.modelling.dropout import dropout_on
    from tasks.modelling.saving import load_model

    cfg, store, results = trained
    store.download_file("runs/20261129T000000/model.keras", tmp_path / "model.keras")
    model = load_model(tmp_path / "model.keras")
    trained_layers = [type(layer).__name__ for layer in model.layers]
    assert trained_layers.count("SwitchedDropout") == 3 and dropout_on(model)  # 48 captchas: a small set
    assert wants_dropout(DROPOUT_BELOW_IMAGES - 1) and not wants_dropout(DROPOUT_BELOW_IMAGES)
    plain, regularised = build_network(32, 96, 11, dropout=False), build_network(32, 96, 11, dropout=True)
    assert [type(layer).__name__ for layer in plain.layers] == trained_layers
    assert plain.count_params() == regularised.count_params()
    assert not dropout_on(plain) and dropout_on(regularised)


def test_the_dropout_switch_turns_dropout_on_once_the_model_reads():
    from tasks.modelling.dropout import SwitchedDropout, dropout_on, dropout_switch

    inputs = keras.layers.Input((1000,))
    model = keras.Model(inputs, SwitchedDropout(0.25, on=False, seed=1)(inputs))
    ones = np.ones((4, 1000), "float32")
    assert np.array_equal(model(ones, training=True), ones)  # off: nothing dropped
    switch = dropout_switch(0.5)
    switch.set_model(model)
    switch.on_epoch_end(0, {"accuracy": 0.2, "val_accuracy": 0.4})
    assert not dropout_on(model)
    switch.on_epoch_end(1, {"accuracy": 0.6, "val_accuracy": 0.4})
    assert dropout_on(model)
    dropped = keras.ops.convert_to_numpy(model(ones, training=True))
    assert 0.2 < (dropped == 0).mean() < 0.3 and np.allclose(dropped[dropped > 0], 1 / 0.75)
    assert np.array_equal(model(ones, training=False), ones)  # inference never drops


def test_wide_images_with_short_labels_get_one_time_step_per_eight_columns():
    from tasks.modelling.architectures import get_architecture
    from tasks.modelling.architectures.crnn import MAX_STEPS_PER_CHARACTER, columns_per_step

    crnn = get_architecture("crnn")
    wide, usual = crnn.build(48, 424, 8, 11, 2000), crnn.build(48, 200, 6, 11, 2000)
    assert wide.output_shape[1] == 424 // 8 and usual.output_shape[1] == 200 // 4
    assert wide.count_params() == usual.count_params()  # the same weights, fewer LSTM steps
    limit = 4 * MAX_STEPS_PER_CHARACTER * 8
    assert columns_per_step(limit, 8) == 4 and columns_per_step(limit + 4, 8) == 8


def test_dropout_goes_off_for_good_where_it_undoes_what_the_model_had_learnt():
    from tasks.modelling.dropout import UNDONE_EPOCHS, SwitchedDropout, dropout_on, dropout_switch

    inputs = keras.layers.Input((8,))
    model = keras.Model(inputs, SwitchedDropout(0.25, on=False, seed=1)(inputs))
    changes = []
    switch = dropout_switch(0.5, record=lambda *change: changes.append(change))
    switch.set_model(model)
    switch.on_epoch_end(0, {"accuracy": 0.6, "val_accuracy": 0.1})
    switch.on_epoch_end(1, {"accuracy": 0.25, "val_accuracy": 0.1})  # one epoch below half: kept on
    switch.on_epoch_end(2, {"accuracy": 0.4, "val_accuracy": 0.1})
    assert dropout_on(model) and not changes
    for epoch in range(3, 3 + UNDONE_EPOCHS):
        switch.on_epoch_end(epoch, {"accuracy": 0.2, "val_accuracy": 0.1})
    assert not dropout_on(model)
    assert changes == [(3 + UNDONE_EPOCHS, "dropout-off-again",
                        "the training probe read 20% for 2 epochs after dropout went on at 60%")]
    switch.on_epoch_end(9, {"accuracy": 0.9, "val_accuracy": 0.9})
    assert not dropout_on(model) and len(changes) == 1  # off for good
    resumed = dropout_switch(0.5, record=changes.append, undone=True)
    resumed.set_model(model)
    resumed.on_epoch_end(10, {"accuracy": 0.9, "val_accuracy": 0.9})
    assert not dropout_on(model)
