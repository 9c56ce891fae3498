"""The REST API over :mod:`freeim.im` (mounted with ``include("freeim.urls")``): views, serializers,
permissions and the JSON-only parser. Who is speaking always comes from ``request.user``."""
