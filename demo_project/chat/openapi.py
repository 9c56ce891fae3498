"""The demo's own endpoints and its tab token, described for the schema the demo serves at im/schema/ (beside
freeim's): drf-spectacular cannot guess what hand-built answers hold, nor what a custom authentication is."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers

from . import views
from .tokens import SCHEME


class TabTokenScheme(OpenApiAuthenticationExtension):
    target_class = "demo_project.chat.tokens.TabTokenAuthentication"
    name = "tabToken"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {"type": "http", "scheme": SCHEME.lower(),
                "description": "The token POST /demo/login/ answered, kept by the tab (demo only)."}


class Login(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=150)
    password = serializers.CharField(required=False, allow_blank=True)


class Identity(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    is_staff = serializers.BooleanField()


class LoggedIn(Identity):
    token = serializers.CharField()


class Person(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    online = serializers.BooleanField()


extend_schema_view(post=extend_schema(request=Login, responses={200: LoggedIn, 400: None, 413: None, 415: None},
                                      tags=["demo"], summary="Log this tab in (demo only)"))(views.LoginView)
extend_schema_view(get=extend_schema(responses=Identity, tags=["demo"], summary="Who this tab is"))(views.MeView)
extend_schema_view(get=extend_schema(responses=Person(many=True), tags=["demo"],
                                     summary="Every user, with presence"))(views.UsersView)
