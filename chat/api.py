"""Read-only conversations API: a person's own conversations, with their messages and citations.

Mounted at ``/api/`` by ``resync_site/urls.py`` (``include("chat.api")``). Someone else's
conversation is "not found", exactly like the chat page.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from chat import selectors
from chat.models import Citation, Conversation, Message
from resync_site.roles import OPERATIONS, role_permission

LIST_LIMIT = 1000


class ConversationSerializer(serializers.ModelSerializer[Conversation]):
    class Meta:
        model = Conversation
        fields = ["id", "title", "language", "created_at", "updated_at", "resolved_at"]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer[Message]):
    turn_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Message
        fields = ["id", "turn_id", "role", "content", "model", "language", "created_at"]
        read_only_fields = fields


class CitationSerializer(serializers.ModelSerializer[Citation]):
    turn_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Citation
        fields = ["id", "turn_id", "kind", "ref", "title", "url", "line_start", "line_end"]
        read_only_fields = fields


class ConversationDetailSerializer(ConversationSerializer):
    messages = MessageSerializer(many=True, read_only=True)
    citations = CitationSerializer(many=True, read_only=True)

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "messages", "citations"]
        read_only_fields = fields


class ConversationList(generics.ListAPIView[Conversation]):
    """GET /api/conversations/: the caller's conversations, most recent first."""

    serializer_class = ConversationSerializer
    permission_classes = [role_permission(*OPERATIONS)]

    def get_queryset(self) -> Any:
        return selectors.conversations_for(self.request.user, limit=LIST_LIMIT)


class ConversationDetail(generics.GenericAPIView[Conversation]):
    """GET /api/conversations/<id>/: one of the caller's conversations with its messages and citations."""

    serializer_class = ConversationDetailSerializer
    permission_classes = [role_permission(*OPERATIONS)]

    @extend_schema(responses=ConversationDetailSerializer)
    def get(self, request: Request, pk: str) -> Response:
        conversation = selectors.conversation_for(request.user, pk)
        if conversation is None:
            raise Http404("No such conversation.")
        data = ConversationSerializer(conversation).data
        data["messages"] = MessageSerializer(selectors.messages_for(conversation), many=True).data
        data["citations"] = CitationSerializer(Citation.objects.filter(turn__conversation=conversation).order_by("id"), many=True).data
        return Response(data)


urlpatterns = [
    path("conversations/", ConversationList.as_view(), name="api-conversations"),
    path("conversations/<uuid:pk>/", ConversationDetail.as_view(), name="api-conversation"),
]
