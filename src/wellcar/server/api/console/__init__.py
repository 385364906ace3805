"""The fleet console: server-rendered pages for operators at `/`, mounted next to the REST API.

Pages read and forms write through the same data layer as the REST API
(`wellcar.server.data`), and form values are checked by the API's own request models, so
a bad value gets the API's error message next to its field. See docs/console.md.
"""
