"""An edit's uploads: the multipart form read and checked, its images recognised, its bytes bounded.

``form`` reads an edit's multipart body into its fields and images (``read_edit_form``), after
``hold_edit_body`` has checked the key's limits and held the body's bytes against the worker's
room for uploads (``holds.UploadHolds``); ``imageinfo`` recognises an image's format and size
from its first bytes, without decoding it.
"""

# Room in an edit's body beside its uploads: the form's text fields and each part's headers.
EDIT_FORM_ROOM = 1024 * 1024
