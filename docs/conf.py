"""Sphinx + myst-nb: render the stored, executed notebooks as the published guide, offline."""

project = "binderhub-registry"
author = "binderhub-registry contributors"
extensions = ["myst_nb"]
# the notebooks are stored executed against the sandbox and tested by nbval: render, never re-run
nb_execution_mode = "off"
nb_merge_streams = True
exclude_patterns = ["_build", "**/build/**", "**.ipynb_checkpoints"]
html_theme = "alabaster"  # ships with Sphinx: no download at build time
html_title = "Set up the container registry for BinderHub"
myst_enable_extensions = ["colon_fence"]
suppress_warnings = ["mystnb.unknown_mime_type"]
