"""Test proxy applications (FastAPI and Starlette) and a uvicorn runner on 127.0.0.1."""
