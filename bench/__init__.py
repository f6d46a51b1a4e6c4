"""script/bench: Teaser against python-socketio and a bare Starlette endpoint, same run, same machine."""
