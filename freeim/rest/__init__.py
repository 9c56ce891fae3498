"""The REST API (mounted with ``include("freeim.urls")``): :mod:`.views`, :mod:`.serializers`,
:mod:`.permissions` and the JSON-only :mod:`.parsers`."""
