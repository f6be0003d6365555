"""The course site: `make site` (sphinx-build -W -c site . build/site). The source folder is the repository root:
README.md is the landing page, the committed notebooks are rendered as they are (never re-executed), and the API
reference comes from the docstrings. site/_toc.yml orders the pages; nothing is fetched from the web at build time."""
project = "vlmlearn"
author = "the vlmlearn authors"
copyright = "the vlmlearn authors, MIT licence"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx_external_toc"]
external_toc_path = "site/_toc.yml"
external_toc_exclude_missing = True  # only what the table of contents names is built
exclude_patterns = ["build", ".venv*", "**/.ipynb_checkpoints"]

nb_execution_mode = "off"  # the committed outputs are the course's record
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]  # a saved widget view without its (stripped) state shows nothing

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # the signatures carry them
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "sphinx_book_theme"
html_title = "vlmlearn: how vision-language models learn"
html_theme_options = {"show_navbar_depth": 1, "home_page_in_toc": True}
html_last_updated_fmt = None
