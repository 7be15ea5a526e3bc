"""The voice flows, one file each; `voice.webhooks` puts them behind the signature check."""
