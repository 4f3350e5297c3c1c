"""The JSON API, `/api/v1`: one module per resource, each a thin shell that
declares its schemas (`app.web.schemas`) and calls the domain. `routes.bp`
is the blueprint to register."""
