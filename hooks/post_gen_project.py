"""Keep the files the answers call for, as conditional_files.json (rendered with the project) declares.

The manifest is the one place that says which file exists under which answer: the SDK adapter that
becomes gemini_client.py, the caller check's modules and tests, and whole folders (k8s/). This hook only
carries it out.
Standard library only.
"""

import json
import shutil
from pathlib import Path

MANIFEST = Path("conditional_files.json")

manifest = json.loads(MANIFEST.read_text())
for entry in manifest["files"]:
    path = Path(entry["path"])
    if not entry["keep"]:
        path.unlink()
    elif "as" in entry:
        path.rename(entry["as"])
for entry in manifest.get("folders", []):
    if not entry["keep"]:
        shutil.rmtree(entry["path"])  # fails loudly if the folder is not there
for entry in manifest.get("copies", []):
    if entry["keep"]:
        shutil.copytree(entry["from"], entry["to"])
for folder in manifest["emptied"]:
    Path(folder).rmdir()  # fails loudly if the manifest forgot a file in it
MANIFEST.unlink()
