"""The dashboard's pages: each module loads its data from the store (the API's answer) and renders it."""
