# Sourced by Heroku at every dyno's start-up ($HOME is the app): puts bin/ziri-images on PATH, so
# `heroku run ziri-images ...` works without installing the project (the buildpack installs only
# requirements.txt). Appended: it never shadows the buildpack's python or a system command.
export PATH="$PATH:$HOME/bin"
