"""Sphinx + myst-nb: render the stored, executed notebooks as the published guide, offline.

``make docs`` builds with ``-W --keep-going -n``: a warning, a broken cross-reference or a page
left out of the tree fails the build.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))
import guide

# the repository's address is set once, in pyproject.toml's [project.urls]
REPOSITORY = guide.repository_url()

project = "binderhub-registry"
author = "binderhub-registry contributors"
extensions = ["myst_nb", "sphinx_copybutton", "guide"]
# the notebooks are stored executed against the sandbox and tested by nbval: render, never re-run
nb_execution_mode = "off"
nb_merge_streams = True
exclude_patterns = ["_build", "**/build/**", "**.ipynb_checkpoints"]
# a maintained theme for notebooks, installed from PyPI (the docs extra): nothing is downloaded at
# build time, and the built pages load nothing from other hosts (tests/test_site.py checks)
html_theme = "sphinx_book_theme"
html_title = "Set up the container registry for BinderHub"
html_static_path = ["_static"]
html_css_files = ["guide.css"]
html_js_files = ["guide.js"]  # the registry matrix's scroll hint
html_favicon = "_static/favicon.svg"  # else browsers ask for /favicon.ico, a 404
html_last_updated_fmt = None
# an explicit mode: with none, the theme's script logs "Got invalid theme mode" as an error
html_context = {"default_mode": "light"}
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    # from reading to running: the repository, each notebook's download (.ipynb) and its launch
    # on Binder; the notebooks are at notebooks/ in the repository, as the pages are here
    "repository_url": REPOSITORY,
    "repository_branch": "HEAD",
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {"binderhub_url": guide.BINDER, "notebook_interface": "jupyterlab"},
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}
# a copy button on every code block; a `$ ` or `>>> ` prompt is left out of what it copies
copybutton_prompt_text = r"\$ |>>> "
copybutton_prompt_is_regexp = True
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]
nitpicky = True
