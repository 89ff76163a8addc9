"""Loading models: in Keras' safe mode, so a model carrying code is refused."""
import pytest


def test_a_model_with_code_in_it_is_refused_by_safe_mode(tmp_path):
    import keras

    from tasks.modelling.saving import load_model

    inputs = keras.Input((4,))
    hostile = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    hostile.save(tmp_path / "hostile.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        load_model(tmp_path / "hostile.keras")
