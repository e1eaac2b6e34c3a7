"""A small warehouse service on FastAPI, for the inventory evaluation (tests/realapi/capture.sh).

The routes are chosen for path styles a template learner must get right, as real FastAPI services have them:
a version prefix (/v1), kebab-case collections (/purchase-orders), ids that are words or word+digit tokens
chosen by users (warehouse codes such as `lyon`, SKUs such as `red1`, usernames such as `jdoe`), UUIDs,
integers nested under a word id, one-word endpoints side by side at one position (/v1/search, /v1/export,
/v1/login, /v1/status), and a reset token in a path segment. The spec is the one FastAPI generates
(openapi.json beside this file, written by `python app.py --spec`); state lives in memory for the life of
the process.

    uvicorn app:app --host HOST --port PORT
"""

import json
import secrets
import sys
import uuid
from typing import Optional

from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, Field

app = FastAPI(title="Warehouse (mirador evaluation)", version="1.0.0")


class Warehouse(BaseModel):
    code: str = Field(max_length=40)
    city: str = Field(max_length=80)


class WarehouseUpdate(BaseModel):
    city: str = Field(max_length=80)


class Bin(BaseModel):
    bin_id: int
    capacity: int = 0


class Item(BaseModel):
    sku: str = Field(max_length=40)
    name: str = Field(max_length=80)
    quantity: int = 0


class ItemPatch(BaseModel):
    name: Optional[str] = Field(default=None, max_length=80)
    quantity: Optional[int] = None


class OrderLine(BaseModel):
    sku: str = Field(max_length=40)
    quantity: int = 1


class PurchaseOrder(BaseModel):
    supplier: str = Field(max_length=80)
    lines: list[OrderLine] = []


class StoredOrder(PurchaseOrder):
    order_id: uuid.UUID


class Preferences(BaseModel):
    language: str = Field(default="en", max_length=10)
    newsletter: bool = False


class Login(BaseModel):
    username: str = Field(max_length=40)
    password: str = Field(max_length=80)


class Token(BaseModel):
    token: str


WAREHOUSES: dict[str, Warehouse] = {}
BINS: dict[tuple[str, int], Bin] = {}
ITEMS: dict[str, Item] = {}
ORDERS: dict[uuid.UUID, StoredOrder] = {}
PREFS: dict[str, Preferences] = {}


def missing(what):
    raise HTTPException(status_code=404, detail=f"no such {what}")


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.get("/v1/status")
def status() -> dict:
    return {"warehouses": len(WAREHOUSES), "items": len(ITEMS), "orders": len(ORDERS)}


@app.get("/v1/search")
def search(q: str = "") -> list[Item]:
    return [i for i in ITEMS.values() if q.lower() in i.name.lower() or q.lower() in i.sku.lower()]


@app.post("/v1/export")
def export() -> dict:
    return {"items": len(ITEMS), "format": "csv"}


@app.post("/v1/login")
def login(body: Login) -> Token:
    return Token(token=uuid.uuid4().hex)


class ResetRequest(BaseModel):
    username: str = Field(max_length=40)


class Reset(BaseModel):
    token: str
    username: str


RESETS: dict[str, Reset] = {}


# A secret in a path segment, as password-reset and share links carry it: it must become a parameter, and
# its value must not be written anywhere.
@app.post("/v1/password-resets", status_code=201)
def create_reset(body: ResetRequest) -> Reset:
    reset = Reset(token=secrets.token_urlsafe(24), username=body.username)
    RESETS[reset.token] = reset
    return reset


@app.get("/v1/password-resets/{token}")
def get_reset(token: str) -> Reset:
    return RESETS.get(token) or missing("reset")


@app.get("/v1/warehouses")
def list_warehouses() -> list[Warehouse]:
    return list(WAREHOUSES.values())


@app.post("/v1/warehouses", status_code=201)
def create_warehouse(body: Warehouse) -> Warehouse:
    WAREHOUSES[body.code] = body
    return body


@app.get("/v1/warehouses/{code}")
def get_warehouse(code: str) -> Warehouse:
    return WAREHOUSES.get(code) or missing("warehouse")


@app.put("/v1/warehouses/{code}")
def put_warehouse(code: str, body: WarehouseUpdate) -> Warehouse:
    if code not in WAREHOUSES:
        missing("warehouse")
    WAREHOUSES[code] = Warehouse(code=code, city=body.city)
    return WAREHOUSES[code]


@app.delete("/v1/warehouses/{code}", status_code=204)
def delete_warehouse(code: str) -> Response:
    WAREHOUSES.pop(code, None) or missing("warehouse")
    return Response(status_code=204)


@app.get("/v1/warehouses/{code}/bins")
def list_bins(code: str) -> list[Bin]:
    return [b for (c, _), b in BINS.items() if c == code]


@app.put("/v1/warehouses/{code}/bins/{bin_id}")
def put_bin(code: str, bin_id: int, body: Bin) -> Bin:
    if code not in WAREHOUSES:
        missing("warehouse")
    BINS[(code, bin_id)] = Bin(bin_id=bin_id, capacity=body.capacity)
    return BINS[(code, bin_id)]


@app.get("/v1/warehouses/{code}/bins/{bin_id}")
def get_bin(code: str, bin_id: int) -> Bin:
    return BINS.get((code, bin_id)) or missing("bin")


@app.get("/v1/items")
def list_items() -> list[Item]:
    return list(ITEMS.values())


@app.post("/v1/items", status_code=201)
def create_item(body: Item) -> Item:
    ITEMS[body.sku] = body
    return body


@app.get("/v1/items/{sku}")
def get_item(sku: str) -> Item:
    return ITEMS.get(sku) or missing("item")


@app.patch("/v1/items/{sku}")
def patch_item(sku: str, body: ItemPatch) -> Item:
    item = ITEMS.get(sku) or missing("item")
    ITEMS[sku] = item.model_copy(update=body.model_dump(exclude_none=True))
    return ITEMS[sku]


@app.delete("/v1/items/{sku}", status_code=204)
def delete_item(sku: str) -> Response:
    ITEMS.pop(sku, None) or missing("item")
    return Response(status_code=204)


@app.get("/v1/purchase-orders")
def list_orders() -> list[StoredOrder]:
    return list(ORDERS.values())


@app.post("/v1/purchase-orders", status_code=201)
def create_order(body: PurchaseOrder) -> StoredOrder:
    order = StoredOrder(order_id=uuid.uuid4(), **body.model_dump())
    ORDERS[order.order_id] = order
    return order


@app.get("/v1/purchase-orders/{order_id}")
def get_order(order_id: uuid.UUID) -> StoredOrder:
    return ORDERS.get(order_id) or missing("order")


@app.delete("/v1/purchase-orders/{order_id}", status_code=204)
def delete_order(order_id: uuid.UUID) -> Response:
    ORDERS.pop(order_id, None) or missing("order")
    return Response(status_code=204)


@app.get("/v1/purchase-orders/{order_id}/lines")
def order_lines(order_id: uuid.UUID) -> list[OrderLine]:
    return (ORDERS.get(order_id) or missing("order")).lines


@app.get("/v1/users/{username}/preferences")
def get_prefs(username: str) -> Preferences:
    return PREFS.get(username, Preferences())


@app.put("/v1/users/{username}/preferences")
def put_prefs(username: str, body: Preferences) -> Preferences:
    PREFS[username] = body
    return body


if __name__ == "__main__" and sys.argv[1:] == ["--spec"]:
    json.dump(app.openapi(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
