"""Accounts: login, registration, logout, devices, passwords, deactivation and shared-secret registration.

Spec: Client-Server API, "Client Authentication" (legacy API, user-interactive
authentication, login, registration, account management) and "Device
management"; Synapse's admin API ``/_synapse/admin/v1/register``.
"""
