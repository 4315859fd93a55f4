"""Keep the Gemini adapter of the chosen SDK as gemini_client.py and drop the other one."""

import shutil
from pathlib import Path

SDK = "{{ cookiecutter.gemini_sdk }}"

adapters = Path("_sdk")
(adapters / f"{SDK.replace('-', '_')}.py").rename("gemini_client.py")
shutil.rmtree(adapters)
