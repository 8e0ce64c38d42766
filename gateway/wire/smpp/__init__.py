"""SMPP 3.4 on the wire, shared by the simulated SMSC and the gateway's ESME plugin.

``pdu`` encodes and decodes PDUs and cuts a byte stream into them; ``text`` handles data_coding,
user data headers and long messages; ``receipts`` writes delivery receipts in an account's dialect
and reads them back in any dialect. No sockets here: sessions live with their front ends.
"""
