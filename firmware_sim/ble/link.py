"""A simulated radio: bumble virtual controllers on one ``LocalLink``.

One controller per simulated peripheral (each driven by its own bumble host
running a GATT server), plus one *gateway* controller exposed over a real HCI
transport (a TCP server), so that the gateway runs a complete host stack (HCI,
L2CAP, ATT, GATT, SMP) exactly as it would against a USB dongle::

    gateway host --HCI over TCP--> GatewayController ==LocalLink== peripheral controllers

Run it as a process for the demo::

    python -m firmware_sim.ble.link --port 9001

and point the gateway at ``tcp-client:127.0.0.1:9001``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from bumble import core, hci, ll
from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport.common import StreamPacketSource

if TYPE_CHECKING:
    from firmware_sim.ble.peripherals import SimulatedPeripheral

PeripheralT = TypeVar("PeripheralT", bound="SimulatedPeripheral")

__all__ = ["GatewayController", "MuteController", "SimulatedLink", "main"]

logger = logging.getLogger(__name__)


class GatewayController(Controller):
    """The controller the gateway reaches over HCI.

    bumble's virtual controller leaves two commands as stubs that a real host
    relies on; they are completed here as the Core specification says.
    """

    def on_hci_le_create_connection_cancel_command(self, command: Any) -> Any:
        """Core v5.4 Vol 4 Part E 7.8.13: cancel, then report "Unknown Connection ID"."""
        pending = self.pending_le_connection
        self.pending_le_connection = None
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        # Scheduled so that the Command Complete event goes out first.
        asyncio.get_running_loop().call_soon(self._send_cancelled_connection, pending)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)

    def _send_cancelled_connection(self, pending: Any) -> None:
        self.send_hci_packet(
            hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                connection_handle=0,
                role=hci.Role.CENTRAL,
                peer_address_type=pending.peer_address.address_type,
                peer_address=pending.peer_address,
                connection_interval=0,
                peripheral_latency=0,
                supervision_timeout=0,
                central_clock_accuracy=0,
            )
        )

    def on_hci_reset_command(self, command: Any) -> Any:
        """Core v5.4 Vol 4 Part E 7.3.2: a reset drops links, scanning and initiating.

        Matters when a gateway host restarts (or crashes) and a new one opens the
        transport: the peripherals must see their links go away.
        """
        for connection in list(self.le_connections.values()):
            # The peer sees a supervision timeout; it may have left the link already.
            with contextlib.suppress(core.InvalidArgumentError):
                connection.send_ll_control_pdu(
                    ll.TerminateInd(hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR)
                )
        self.le_connections.clear()
        self.pending_le_connection = None
        self.le_scan_enable = False
        return super().on_hci_reset_command(command)


class MuteController(Controller):
    """A controller that advertises but never takes part in a connection.

    It ignores CONNECT_IND, so the central believes the link is up while no ATT
    request is ever answered: the "device that never answers" quirk.
    """

    def on_le_connect_ind(self, packet: Any) -> None:
        """Swallow the connection request."""
        logger.debug("[%s] ignoring CONNECT_IND (mute quirk)", self.name)

    def on_ll_control_pdu(self, sender_address: Any, packet: Any) -> None:
        """Nothing to answer: there is no link on this side."""


class SimulatedLink:
    """Hosts the local link, the gateway controller and the simulated peripherals.

    An async context manager: entering opens the HCI TCP server (port 0 picks a
    free port, see :attr:`port`), leaving detaches every peripheral and closes
    the server.  Reusable, not re-entrant.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._bind = (host, port)
        self._link: Any = None
        self._server: _HciTcpServer | None = None
        self._gateway: GatewayController | None = None
        self._peripherals: list[SimulatedPeripheral] = []

    @property
    def port(self) -> int:
        """The TCP port the gateway controller listens on."""
        if self._server is None:
            raise RuntimeError("simulated link is not started")
        return self._server.port

    @property
    def hci_transport(self) -> str:
        """The bumble transport spec a gateway host should open."""
        return f"tcp-client:{self._bind[0]}:{self.port}"

    @property
    def link(self) -> Any:
        """The bumble ``LocalLink`` (for peripherals to attach controllers to)."""
        if self._link is None:
            raise RuntimeError("simulated link is not started")
        return self._link

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Create the link and open the gateway's HCI transport."""
        if self._server is not None:
            raise RuntimeError("simulated link already started")
        self._link = LocalLink()  # type: ignore[no-untyped-call]  # untyped in bumble
        self._server = _HciTcpServer()
        self._gateway = GatewayController("gateway", host_sink=self._server, link=self._link)
        await self._server.start(self._bind, self._gateway)
        logger.info("simulated BLE link: gateway HCI on %s", self.hci_transport)

    def new_controller(self, name: str, *, mute: bool = False) -> Any:
        """A fresh controller on the link for one peripheral."""
        cls = MuteController if mute else Controller
        return cls(name, link=self.link)

    async def add(self, peripheral: PeripheralT) -> PeripheralT:
        """Power a peripheral on, on its own controller on this link."""
        await peripheral.attach(self)
        self._peripherals.append(peripheral)
        return peripheral

    async def aclose(self) -> None:
        """Detach the peripherals and close the HCI server and its client socket."""
        for peripheral in reversed(self._peripherals):
            await peripheral.detach()
        self._peripherals.clear()
        if self._server is not None:
            await self._server.aclose()
        self._server = self._gateway = self._link = None


class _HciTcpServer:
    """HCI (H4) over TCP for one gateway host at a time.

    bumble's ``tcp-server`` transport shares one sink between successive
    connections, so the late ``connection_lost`` of a closed connection
    detaches the next one: a restarted gateway would hear nothing.  Here each
    connection has its own parser and only the current one is written to.
    """

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._current: asyncio.Transport | None = None

    async def start(self, bind: tuple[str, int], controller: Any) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # HCI is many tiny writes: without this, Nagle + delayed ACK add ~40 ms
        # to every ATT round trip (accepted sockets inherit it on Linux).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(bind)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _HciConnection(self, controller), sock=sock)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulated link is not started")
        return int(self._server.sockets[0].getsockname()[1])

    def attach(self, transport: asyncio.Transport) -> None:
        """A new gateway host connected: it replaces any previous one."""
        previous, self._current = self._current, transport
        if previous is not None:
            previous.close()

    def detach(self, transport: asyncio.BaseTransport | None) -> None:
        if self._current is transport:
            self._current = None

    def on_packet(self, packet: bytes) -> None:
        """Controller -> host."""
        if self._current is not None:
            self._current.write(packet)

    async def aclose(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


class _HciConnection(StreamPacketSource):
    """One gateway host connection: host -> controller packets."""

    def __init__(self, server: _HciTcpServer, controller: Any) -> None:
        super().__init__()
        self._server = server
        self._transport: asyncio.BaseTransport | None = None
        self.set_packet_sink(controller)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if isinstance(transport, asyncio.Transport):
            self._server.attach(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.detach(self._transport)


async def _serve(port: int) -> None:
    from firmware_sim.ble.peripherals import demo_peripherals

    async with SimulatedLink(port=port) as sim:
        for peripheral in demo_peripherals():
            await sim.add(peripheral)
            peripheral.wake()
        print(f"gateway HCI transport: {sim.hci_transport}", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the simulated link with one of each peripheral."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
