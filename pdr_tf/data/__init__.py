"""Data: on-disk formats, the TFRecord feature spec, the input pipeline, dataset provisioning, folder locks."""
