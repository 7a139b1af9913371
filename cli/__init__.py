"""The one ``ringstack`` command line."""
