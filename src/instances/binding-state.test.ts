import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bindingState, type BindingGenerations, type BindingState } from './binding-state.js';

const cases: Array<[string, BindingGenerations, BindingState]> = [
  [
    'a new instance',
    { keyPairName: null, desiredGeneration: 0, appliedGeneration: null, applyOk: null, revoked: false },
    'None',
  ],
  [
    'a new instance whose agent acknowledged generation 0',
    { keyPairName: null, desiredGeneration: 0, appliedGeneration: 0, applyOk: true, revoked: false },
    'None',
  ],
  [
    'a bind not yet reported',
    { keyPairName: 'kp', desiredGeneration: 1, appliedGeneration: null, applyOk: null, revoked: false },
    'Pending',
  ],
  [
    'a bind reported applied',
    { keyPairName: 'kp', desiredGeneration: 1, appliedGeneration: 1, applyOk: true, revoked: false },
    'Applied',
  ],
  [
    'a bind reported failed',
    { keyPairName: 'kp', desiredGeneration: 1, appliedGeneration: 1, applyOk: false, revoked: false },
    'Failed',
  ],
  [
    'a newer bind after a failure',
    { keyPairName: 'kp2', desiredGeneration: 2, appliedGeneration: 1, applyOk: false, revoked: false },
    'Pending',
  ],
  [
    'an unbind not yet reported',
    { keyPairName: null, desiredGeneration: 2, appliedGeneration: 1, applyOk: true, revoked: false },
    'Pending',
  ],
  [
    'an unbind reported applied',
    { keyPairName: null, desiredGeneration: 2, appliedGeneration: 2, applyOk: true, revoked: false },
    'None',
  ],
  [
    'an unbind reported failed',
    { keyPairName: null, desiredGeneration: 2, appliedGeneration: 2, applyOk: false, revoked: false },
    'Failed',
  ],
  [
    'a revoked instance',
    { keyPairName: null, desiredGeneration: 3, appliedGeneration: 1, applyOk: true, revoked: true },
    'None',
  ],
];

for (const [name, input, expected] of cases) {
  test(`binding state of ${name} is ${expected}`, () => {
    assert.equal(bindingState(input), expected);
  });
}
