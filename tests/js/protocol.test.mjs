// What the page says to agents and reads from the room (web/static/protocol.js), with
// names made up here: the page uses whichever names the server sends in /api/config.
//   node --test tests/js/

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import {
  cleanupMessage,
  isFailed,
  isRecovering,
  publish,
  publishOptions,
  recoveryWait,
  roomStatus,
  selectionMessage,
  useProtocol,
} from '../../src/room_recovery/web/static/protocol.js';

const PROTOCOL = {
  messages: { room_cleanup: 'bye', agent_selection: 'pick', topic: '' },
  room_status: { key: 'rr', failed: 'gave-up', recovering: 'replacing', recovery_wait: 10 },
  attributes: { heartbeat: 'beat', agent_state: 'state', agent_states: ['listening'] },
};

const metadata = (mark) => JSON.stringify({ other: 1, rr: mark });

before(() => useProtocol(PROTOCOL));

describe("the room's status", () => {
  it("is read from the room's metadata under the protocol's key", () => {
    assert.deepEqual(roomStatus(metadata({ status: 'gave-up', reason: 'x' })), {
      status: 'gave-up',
      reason: 'x',
    });
  });

  it("is none in a room without metadata, with another application's, or with broken JSON", () => {
    for (const other of [undefined, '', '{"theirs": 1}', 'not json', 'null']) {
      assert.equal(roomStatus(other), null, String(other));
    }
  });

  it('says failed only with the protocol\'s name for it', () => {
    assert.equal(isFailed(roomStatus(metadata({ status: 'gave-up' }))), true);
    assert.equal(isFailed(roomStatus(metadata({ status: 'failed' }))), false);
    assert.equal(isFailed(null), false);
  });
});

describe('a recovering room', () => {
  it('promises a replacement for the agent it names, or for any agent when it names none', () => {
    const forAgent1 = roomStatus(metadata({ status: 'replacing', agent: 'agent-1' }));
    assert.equal(isRecovering(forAgent1, 'agent-1'), true);
    assert.equal(isRecovering(forAgent1), true, 'the join timeout asks for any agent');
    const forAny = roomStatus(metadata({ status: 'replacing' }));
    assert.equal(isRecovering(forAny, 'agent-2'), true);
  });

  it("is an old recovery's when it names another agent", () => {
    const forAgent1 = roomStatus(metadata({ status: 'replacing', agent: 'agent-1' }));
    assert.equal(isRecovering(forAgent1, 'agent-2'), false);
  });

  it("is waited for as long as the mark says, at most twice the protocol's wait", () => {
    const wait = (value) => recoveryWait({ status: 'replacing', wait: value });
    assert.equal(wait(4), 4);
    assert.equal(wait(60), 20);
  });

  it("is waited for the protocol's wait when the mark names none that makes sense", () => {
    for (const value of [undefined, 0, -1, 'soon', null]) {
      assert.equal(recoveryWait({ status: 'replacing', wait: value }), 10, String(value));
    }
  });
});

describe('the messages', () => {
  const room = (publishData) => ({ name: 'room-1', localParticipant: { publishData } });

  it('name the chosen agent', () => {
    assert.deepEqual(selectionMessage({ name: 'demo-agent', label: 'Demo' }), {
      type: 'pick',
      agent_id: 'demo-agent',
      agent_name: 'demo-agent',
    });
  });

  it('say goodbye for a room, with the time', () => {
    const message = cleanupMessage({ name: 'room-1' });
    assert.equal(message.type, 'bye');
    assert.equal(message.room, 'room-1');
    assert.ok(Date.now() - Date.parse(message.timestamp) < 60_000);
  });

  it('are sent reliably, with a topic only when the protocol names one', () => {
    assert.deepEqual(publishOptions(), { reliable: true });
    useProtocol({ ...PROTOCOL, messages: { ...PROTOCOL.messages, topic: 'rr' } });
    try {
      assert.deepEqual(publishOptions(), { reliable: true, topic: 'rr' });
    } finally {
      useProtocol(PROTOCOL);
    }
  });

  it('are sent as UTF-8 JSON, and count as sent once LiveKit took them', async () => {
    const sent = [];
    const taken = async (data, options) => sent.push([data, options]);
    assert.equal(await publish(room(taken), { type: 'pick' }), true);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(sent[0][0])), { type: 'pick' });
    assert.deepEqual(sent[0][1], { reliable: true });
  });

  it('that cannot be sent count as not sent, and the page goes on', async (t) => {
    const warn = t.mock.method(console, 'warn', () => {});
    const refused = async () => {
      throw new Error('data channel closed');
    };
    assert.equal(await publish(room(refused), { type: 'bye' }), false);
    assert.equal(warn.mock.calls[0].arguments[0], 'could not send bye');
  });
});
