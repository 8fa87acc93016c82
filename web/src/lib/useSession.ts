import { useMemo, useSyncExternalStore } from 'react';
import type { AuthClient, Session } from './api';

/** The client's current session; re-renders on sign-in, refresh and sign-out (any tab). */
export function useSession(client: AuthClient): Session | null {
  const raw = useSyncExternalStore(
    (onChange) => client.subscribe(onChange),
    () => client.snapshot(),
  );
  return useMemo(() => {
    if (!raw) return null;
    try {
      return JSON.parse(raw) as Session;
    } catch {
      return null;
    }
  }, [raw]);
}
