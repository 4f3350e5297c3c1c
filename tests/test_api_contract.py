"""The API's contract: the OpenAPI document the app serves is valid, covers
every route, and the app answers as it says, for whatever a client sends
(schemathesis generates requests from the document, valid and not)."""

from __future__ import annotations

import itertools
import re

import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode, checks

API = "/api/v1"


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def test_the_openapi_document_is_valid_and_covers_every_api_route(app, client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document = response.json
    validate(document)
    documented = {
        (method.upper(), API + path if not path.startswith(API) else path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = {
        (method, _openapi_path(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(f"{API}/") and rule.endpoint != "api.openapi_document"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == served


def test_every_operation_answers_as_documented_and_never_with_a_server_error(app, shop):
    # Each operation is tried with generated requests, valid and not: every
    # answer must be documented (status, content type, body schema), and
    # none may be a 5xx. (Run by hand, not through schemathesis' pytest
    # plugin, which does not combine with our database-parametrized fixtures.)
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=15, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def answers_as_documented(case):
            # Refusing a well-formed request is allowed: a secret that is not
            # the provider's kind, a template that does not compile, are 422.
            case.call_and_validate(
                headers=shop.auth, excluded_checks=[checks.positive_data_acceptance]
            )

        answers_as_documented()
