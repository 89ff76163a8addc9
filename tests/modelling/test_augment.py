import numpy as np

from tasks.modelling.augment import augment_batch


def batch():
    rng = np.random.default_rng(0)
    images = np.full((4, 32, 96, 1), 255.0, dtype=np.float32)
    images[:, 10:22, 20:70] = rng.uniform(0, 80, size=(4, 12, 50, 1))
    return images


def test_strength_zero_leaves_images_as_they_are():
    images = batch()
    assert np.allclose(augment_batch(images, 0.0).numpy(), images, atol=1e-3)


def test_augmentation_changes_images_but_keeps_them_valid():
    images = batch()
    out = augment_batch(images, 1.0).numpy()
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 255
    assert np.abs(out - images).mean() > 1.0
    # the dark text stays in the frame, on its side of the image (no flips)
    dark = out[..., 0] < 128
    assert dark.any(axis=(1, 2)).all()
    columns = np.nonzero(dark.any(axis=1))[1]
    assert columns.min() >= 5 and columns.max() <= 90


def test_layer_augments_training_calls_only_and_can_be_paused():
    import keras

    from tasks.modelling.augment import Augmentation, augmentation_layer, augmentation_paused, augmentation_switch

    images = batch()
    model = keras.Sequential([keras.layers.Input(images.shape[1:]), Augmentation(name="augmentation")])
    layer = augmentation_layer(model)
    assert np.allclose(model(images, training=True).numpy(), images, atol=1e-3)  # strength starts at 0
    switch = augmentation_switch(threshold=0.5)
    switch.set_model(model)
    switch.on_epoch_end(0, {"accuracy": 0.3, "val_accuracy": 0.2})
    assert float(layer.strength.numpy()) == 0.0
    switch.on_epoch_end(1, {"accuracy": 0.6, "val_accuracy": 0.0})  # learning the training images by heart
    assert float(layer.strength.numpy()) == 1.0
    assert np.abs(model(images, training=True).numpy() - images).mean() > 1.0
    assert np.array_equal(model(images, training=False).numpy(), images)  # inference: unchanged
    with augmentation_paused(model):
        assert np.allclose(model(images, training=True).numpy(), images, atol=1e-3)
    assert float(layer.strength.numpy()) == 1.0
