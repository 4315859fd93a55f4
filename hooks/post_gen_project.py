"""Keep the files the answers call for, as conditional_files.json (rendered with the project) declares.

The manifest is the one place that says which file exists under which answer, one entry per feature: the SDK
adapter that becomes gemini_client.py, the caller check's modules and tests, the HTTPS scripts, whole folders
(certbot/, k8s/) and copies (prompts/ into k8s/), and the one lock of _locks/ that becomes requirements.lock.
This hook only carries it out, and prints nothing when all went well.
Standard library only.
"""

import json
import shutil
from pathlib import Path

MANIFEST = Path("conditional_files.json")

manifest = json.loads(MANIFEST.read_text())
for feature in manifest["features"]:
    for file in feature.get("files", []):
        path, target = (Path(file), None) if isinstance(file, str) else (Path(file["path"]), file.get("as"))
        if not feature["keep"]:
            path.unlink()  # fails loudly if the manifest names a file that is not there
        elif target:
            path.rename(target)
    for folder in feature.get("folders", []):
        if not feature["keep"]:
            shutil.rmtree(folder)
    for copy in feature.get("copies", []):
        if feature["keep"]:
            shutil.copytree(copy["from"], copy["to"])
for entry in manifest["choose"]:
    folder = Path(entry["folder"])
    (folder / entry["file"]).rename(entry["as"])  # fails loudly if the template holds no such file
    shutil.rmtree(folder)
for folder in manifest["emptied"]:
    Path(folder).rmdir()  # fails loudly if the manifest forgot a file in it
MANIFEST.unlink()
