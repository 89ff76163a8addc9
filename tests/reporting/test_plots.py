"""The published plots are real PNG images of the expected content."""
import io

from PIL import Image

from tasks.reporting.plots import confusion_plot, gallery_plot, history_plot


def png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


def test_history_gallery_and_confusion_are_pngs():
    history = {"loss": [3.0, 2.0, 1.0], "val_loss": [3.5, 2.5, 1.5], "accuracy": [0.1, 0.5, 0.9],
               "val_accuracy": [0.0, 0.4, 0.8]}
    width, height = png_size(history_plot(history))
    assert width > 2 * height  # two panels side by side
    captcha = Image.new("L", (96, 32), 255)
    assert png_size(gallery_plot([(captcha, "12", "12"), (captcha, "34", "35")] * 3, title="Test"))
    assert png_size(confusion_plot({"1": {"1": 5, "7": 1}, "2": {"": 1}}, "127"))


def test_a_history_without_validation_still_plots():
    assert png_size(history_plot({"loss": [1.0]}))
