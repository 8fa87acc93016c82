import { describe, expect, it } from 'vitest';
import { AppError } from '../http/errors.js';
import { isDatabaseUnavailable } from './availability.js';

// Which failures mean "the database is away" (503 database_unavailable) and which stay real errors.

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('isDatabaseUnavailable', () => {
  it.each([
    [
      'a connection terminated by a shutdown',
      withCode('terminating connection due to administrator command', '57P01'),
    ],
    ['a server that is starting or stopping', withCode('the database system is shutting down', '57P03')],
    ['a refused connection', withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
    ['every address refused', new AggregateError([withCode('refused', 'ECONNREFUSED')], '')],
    ['a connection lost mid-query', new Error('Connection terminated unexpectedly')],
    ['no connection from the pool in time', new Error('timeout exceeded when trying to connect')],
    ['a wrapped loss', new Error('migration failed', { cause: withCode('reset', 'ECONNRESET') })],
  ])('%s: yes', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it.each([
    ['a unique violation', withCode('duplicate key value', '23505')],
    ['a statement timeout', withCode('canceling statement due to statement timeout', '57014')],
    ['an application error', new AppError('not_found', 'nothing here')],
    ['not an error at all', 'ECONNREFUSED'],
  ])('%s: no', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});
