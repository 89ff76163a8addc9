"""The predict command: reads images with the ONNX model without importing TensorFlow, and says when
there is no model."""


def test_predict_reads_with_onnx_without_importing_tensorflow(trained, tmp_path):
    import subprocess
    import sys

    cfg, store, results = trained
    images = sorted((store.root / "raw").iterdir())[:3]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    code = ("import sys; from tasks.serving.predict import main; status = main(sys.argv[1:]); "
            "print('tensorflow imported:', 'tensorflow' in sys.modules); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, "--model", store.uri, *map(str, images), str(bad)],
                          capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert done.returncode == 1 and lines[-1] == "tensorflow imported: False"
    assert [line.split("\t")[0] for line in lines[:-1]] == [str(p) for p in images]
    assert all(set(line.split("\t")[1]) <= set(results["encode_labels"]["alphabet"]) for line in lines[:-1])
    assert f"error: {bad}: not a readable image" in done.stderr


def test_predict_says_when_there_is_no_model(tmp_path, capsys):
    from tasks.serving.predict import main

    (tmp_path / "a.png").write_bytes(b"x")
    assert main(["--model", str(tmp_path / "nowhere"), str(tmp_path)]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    assert main(["--model", str(tmp_path), str(tmp_path)]) == 2
    assert "neither a store with models/latest.json" in capsys.readouterr().err
