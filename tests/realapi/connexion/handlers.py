"""Handlers of the library service (Connexion routes requests to them by swagger.yaml's operationIds);
state lives in memory for the life of the process."""
import datetime
import os
import uuid


SHELVES = {}  # name -> {"name", "floor"}
BOOKS = {}  # (shelf, isbn) -> book
AUTHORS = {}  # slug -> author
LOANS = {}  # loan_id -> loan

NONE = ({"detail": "not found"}, 404)


def list_shelves():
    return list(SHELVES.values())


def create_shelf(body):
    SHELVES[body["name"]] = body
    return body, 201


def get_shelf(shelf):
    return SHELVES.get(shelf) or NONE


def delete_shelf(shelf):
    if SHELVES.pop(shelf, None) is None:
        return NONE
    for key in [k for k in BOOKS if k[0] == shelf]:
        del BOOKS[key]
    return None, 204


def list_books(shelf):
    if shelf not in SHELVES:
        return NONE
    return [b for (s, _), b in BOOKS.items() if s == shelf]


def add_book(shelf, body):
    if shelf not in SHELVES:
        return NONE
    BOOKS[(shelf, body["isbn"])] = body
    return body, 201


def get_book(shelf, isbn):
    return BOOKS.get((shelf, isbn)) or NONE


def put_book(shelf, isbn, body):
    if (shelf, isbn) not in BOOKS:
        return NONE
    BOOKS[(shelf, isbn)] = {**body, "isbn": isbn}
    return BOOKS[(shelf, isbn)]


def delete_book(shelf, isbn):
    return (None, 204) if BOOKS.pop((shelf, isbn), None) is not None else NONE


def lend(shelf, isbn, body):
    if (shelf, isbn) not in BOOKS:
        return NONE
    loan_id = str(uuid.uuid4())
    due = (datetime.date(2026, 1, 1) + datetime.timedelta(days=21)).isoformat()
    LOANS[loan_id] = {"loan_id": loan_id, "isbn": isbn, "member": body.get("member", ""), "due": due}
    return LOANS[loan_id], 201


def get_loan(loan_id):
    return LOANS.get(str(loan_id)) or NONE


def return_loan(loan_id):
    return (None, 204) if LOANS.pop(str(loan_id), None) is not None else NONE


def get_author(slug):
    return AUTHORS.get(slug) or NONE


def put_author(slug, body):
    AUTHORS[slug] = {**body, "slug": slug}
    return AUTHORS[slug]


def author_books(slug):
    return [b for b in BOOKS.values() if b.get("author") == slug]


def search(q=""):
    return [b for b in BOOKS.values() if q.lower() in b.get("title", "").lower()]


def stats():
    return {"shelves": len(SHELVES), "books": len(BOOKS), "loans": len(LOANS)}
