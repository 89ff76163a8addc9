"""The CRNN architecture: dropout only for small training sets, with the same number of weights either way."""


def test_dropout_guards_small_training_sets_only(trained, tmp_path):
    from tasks.modelling.architectures.crnn import DROPOUT_BELOW_IMAGES, build_network, wants_dropout
    from tasks.modelling.saving import load_model

    cfg, store, results = trained
    store.download_file("runs/20261129T000000/model.keras", tmp_path / "model.keras")
    trained_layers = [type(layer).__name__ for layer in load_model(tmp_path / "model.keras").layers]
    assert trained_layers.count("Dropout") == 3  # 48 captchas: a small set
    assert wants_dropout(DROPOUT_BELOW_IMAGES - 1) and not wants_dropout(DROPOUT_BELOW_IMAGES)
    plain = build_network(32, 96, 11, dropout=False)
    assert [type(layer).__name__ for layer in plain.layers] == [n for n in trained_layers if n != "Dropout"]
    assert plain.count_params() == build_network(32, 96, 11, dropout=True).count_params()
