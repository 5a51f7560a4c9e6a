"""msgraph-sdk, fast: loaded in a background thread while the ARM steps run, and Graph's answers
read into small models of ours (:class:`GraphObject`) rather than msgraph-sdk's own.

Microsoft Graph's SDK is async only, and heavy: about 270 modules for what the steps use, and
~1,200 more the first time one of its ``Entity`` models is read. Neither is needed to start:
:func:`warm_graph` loads the first part while the kernel waits for ARM, and the models here
keep the second from loading at all. Requests are still built by the SDK's request builders
from its own models, and sent through its request adapter (:func:`send`).
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core.credentials import TokenCredential
from kiota_abstractions.serialization import Parsable, ParseNode, SerializationWriter

from .params import GRAPH_SCOPE

if TYPE_CHECKING:
    from msgraph.generated.models.password_credential import PasswordCredential
    from msgraph.graph_service_client import GraphServiceClient

_graph_loading: threading.Thread | None = None


def _load_graph_sdk() -> None:
    """Import what the Graph steps use of msgraph-sdk, kiota and httpx (idempotent).

    About 270 modules (httpx and httpcore with h2 are half the time): 0.1 s
    with cached bytecode, 0.3 to 0.45 s without. Not what
    ``msgraph.generated.models.entity``'s field deserialisers load: see
    :class:`GraphObject`.
    """
    import httpcore  # noqa: F401  (httpx imports it when its first client is made)
    import httpx  # noqa: F401
    from kiota_abstractions.base_request_configuration import RequestConfiguration  # noqa: F401
    from kiota_authentication_azure.azure_identity_authentication_provider import (  # noqa: F401
        AzureIdentityAuthenticationProvider,
    )
    from msgraph.generated.applications.applications_request_builder import (  # noqa: F401
        ApplicationsRequestBuilder,
    )
    from msgraph.generated.applications.item.add_password.add_password_post_request_body import (  # noqa: F401
        AddPasswordPostRequestBody,
    )
    from msgraph.generated.applications.item.application_item_request_builder import (  # noqa: F401
        ApplicationItemRequestBuilder,
    )
    from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (  # noqa: E501, F401
        RemovePasswordPostRequestBody,
    )
    from msgraph.generated.models.application import Application  # noqa: F401
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.password_credential import PasswordCredential
    from msgraph.generated.models.service_principal import ServicePrincipal  # noqa: F401
    from msgraph.generated.service_principals.service_principals_request_builder import (  # noqa: F401
        ServicePrincipalsRequestBuilder,
    )
    from msgraph.graph_request_adapter import GraphRequestAdapter  # noqa: F401
    from msgraph.graph_service_client import GraphServiceClient  # noqa: F401
    from msgraph_core import GraphClientFactory  # type: ignore[import-untyped]  # noqa: F401

    # what the first answers deserialise: an error's parts, a password
    ODataError().get_field_deserializers()
    PasswordCredential().get_field_deserializers()


def warm_graph() -> None:
    """Start loading msgraph-sdk in a background thread, once, while the ARM steps wait.

    The ARM steps before the Graph ones spend most of their time waiting for
    Azure, and the kernel idles between cells: the loading fits there. It only
    imports, and never fails a run: any error is left for the Graph step,
    which waits for this thread before loading anything itself (no module is
    imported by two threads at once).
    """
    global _graph_loading
    if _graph_loading is not None:
        return

    def load() -> None:
        with contextlib.suppress(Exception):  # the Graph step meets it, and says what to do
            _load_graph_sdk()

    _graph_loading = threading.Thread(target=load, name="msgraph-sdk-warm-up", daemon=True)
    _graph_loading.start()


def require_graph_sdk() -> None:
    """msgraph-sdk loaded: by the warm-up thread (waited for), else here."""
    if _graph_loading is not None:
        _graph_loading.join()
    try:
        _load_graph_sdk()
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(
            f"{e.name} is missing: the Azure notebook needs the azure extra: "
            "pip install 'binderhub-registry[azure]'"
        ) from e


@dataclass
class GraphObject(Parsable):
    """An application or a service principal, as the steps read it: four fields.

    msgraph-sdk's ``Application`` and ``ServicePrincipal`` derive from
    ``Entity``, whose field deserialisers import all of Graph's ~1,200 entity
    types to read ``id`` and ``@odata.type``: 1.1 s with cached bytecode, 1.7 s
    without, the largest cost of a sandbox run, for each process. So Graph's
    answers are read into this kiota model instead (kiota's own ``Parsable``
    interface, through the SDK's request adapter); requests are built by the
    SDK's request builders from its own models, as before.
    """

    id: str | None = None
    app_id: str | None = None
    display_name: str | None = None
    password_credentials: list[PasswordCredential] | None = None
    notes: str | None = None  # this deployment's mark (application, service principal)
    tags: list[str] | None = None  # likewise
    created: str | None = None  # createdDateTime (applications), as Graph writes it

    @staticmethod
    def create_from_discriminator_value(parse_node: ParseNode) -> GraphObject:
        """kiota's factory: a new, empty object to read into."""
        return GraphObject()

    def get_field_deserializers(self) -> dict[str, Callable[[ParseNode], None]]:
        """The fields read; Graph's others are skipped."""
        from msgraph.generated.models.password_credential import PasswordCredential

        def credentials(n: ParseNode) -> None:
            self.password_credentials = n.get_collection_of_object_values(PasswordCredential)

        return {
            "id": lambda n: setattr(self, "id", n.get_str_value()),
            "appId": lambda n: setattr(self, "app_id", n.get_str_value()),
            "displayName": lambda n: setattr(self, "display_name", n.get_str_value()),
            "passwordCredentials": credentials,
            "notes": lambda n: setattr(self, "notes", n.get_str_value()),
            "tags": lambda n: setattr(self, "tags", n.get_collection_of_primitive_values(str)),
            "createdDateTime": lambda n: setattr(self, "created", n.get_str_value()),
        }

    def serialize(self, writer: SerializationWriter) -> None:
        """Write the fields read (kiota's interface; the steps send the SDK's models)."""
        writer.write_str_value("id", self.id)
        writer.write_str_value("appId", self.app_id)
        writer.write_str_value("displayName", self.display_name)
        writer.write_collection_of_object_values("passwordCredentials", self.password_credentials)
        writer.write_str_value("notes", self.notes)
        writer.write_collection_of_primitive_values("tags", self.tags)
        writer.write_str_value("createdDateTime", self.created)


@dataclass
class GraphPage(Parsable):
    """A page of a Graph collection of :class:`GraphObject` (``value``)."""

    value: list[GraphObject] | None = None

    @staticmethod
    def create_from_discriminator_value(parse_node: ParseNode) -> GraphPage:
        """kiota's factory: a new, empty page to read into."""
        return GraphPage()

    def get_field_deserializers(self) -> dict[str, Callable[[ParseNode], None]]:
        """The one field read."""

        def value(n: ParseNode) -> None:
            self.value = n.get_collection_of_object_values(GraphObject)

        return {"value": value}

    def serialize(self, writer: SerializationWriter) -> None:
        """Write ``value`` (kiota's interface)."""
        writer.write_collection_of_object_values("value", self.value)


P = TypeVar("P", bound=Parsable)


async def send(builder: Any, info: Any, model: type[P]) -> P | None:
    """Send a request a builder made, reading the answer as ``model``: the builder's own call.

    Exactly what the SDK's ``get()`` and ``post()`` do (the request adapter,
    with Graph's errors as ODataError), with the model read being ours.
    """
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    answer: P | None = await builder.request_adapter.send_async(info, model, {"XXX": ODataError})
    return answer


def query(parameters: Any, **params: Any) -> Any:
    """A request configuration with query parameters (a builder's generated class)."""
    from kiota_abstractions.base_request_configuration import RequestConfiguration

    return RequestConfiguration(query_parameters=parameters(**params))


def quoted(value: str) -> str:
    """``value`` as an OData string literal."""
    return "'" + value.replace("'", "''") + "'"


def graph_client(
    credential: TokenCredential, graph_url: str | None, ca_file: str | None
) -> GraphServiceClient:
    """A Graph client: Microsoft Graph itself (``graph_url`` None), or the sandbox's, with its CA.

    Make one per event loop (msgraph-sdk's httpx client is bound to the loop it started on).
    Its middleware is msgraph-sdk's own but for kiota's ``RetryHandler``, turned off: the step
    runner retries a step whose request failed (429 with its Retry-After, 5xx), and the handler
    would first retry each request up to 3 times itself, so a fault that lasts cost 4 requests
    per attempt of the runner's instead of one.
    """
    require_graph_sdk()
    import httpx
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from kiota_http.middleware.options import RetryHandlerOption
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_request_adapter import options as sdk_options
    from msgraph.graph_service_client import GraphServiceClient
    from msgraph_core import GraphClientFactory

    options = {
        **sdk_options,
        RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0, should_retry=False),
    }
    http = None  # Microsoft Graph: msgraph-sdk's own client (its base URL, proxies from the env)
    if graph_url is not None:
        verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
        http = httpx.AsyncClient(verify=verify, trust_env=False, timeout=60)
    client = GraphClientFactory.create_with_default_middleware(client=http, options=options)
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE])
    adapter = GraphRequestAdapter(auth, client)
    if graph_url is not None:
        adapter.base_url = graph_url
    return GraphServiceClient(request_adapter=adapter)
