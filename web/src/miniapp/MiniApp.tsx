import './miniapp.css';
import { QueryClientProvider, useQuery, useQueryClient } from '@tanstack/react-query';
import { type CSSProperties, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { type MessageKey, useI18n } from '../i18n';
import { ApiError } from '../lib/api';
import { createQueryClient } from '../lib/query';
import { ProgressBar } from '../ui/charts';
import { LanguageSwitch, useLabel } from '../ui/components';
import { Icon } from '../ui/icons';
import { QrImage } from '../ui/QrImage';
import {
  type AuthProblem,
  authProblemOf,
  type ClientCode,
  type ClientEntry,
  type ClientMe,
  MiniAppClient,
} from './client';
import { ReferralCard } from './ReferralCard';
import { colorScheme, readInitData, readMerchantId, readTheme, themeVariables, webApp } from './telegram';

const queryClient = createQueryClient();

/** The customer's Telegram Mini App: balance, tier progress, a one-time code with QR, history. */
export default function MiniApp() {
  const theme = useTelegramTheme();
  const initData = useMemo(readInitData, []);
  const merchantId = useMemo(readMerchantId, []);
  const client = useMemo(
    () => (initData && merchantId ? new MiniAppClient(initData, merchantId) : null),
    [initData, merchantId],
  );
  useEffect(() => {
    webApp()?.ready?.();
    webApp()?.expand?.();
  }, []);
  return (
    <QueryClientProvider client={queryClient}>
      <div className={`miniapp miniapp-${theme.scheme}`} style={theme.style}>
        {!initData ? (
          <ProblemScreen problem="no_telegram" />
        ) : !merchantId || !client ? (
          <ProblemScreen problem="no_merchant" />
        ) : (
          <SignedIn client={client} />
        )}
      </div>
    </QueryClientProvider>
  );
}

/** Telegram's theme as CSS variables, following live theme changes. */
function useTelegramTheme(): { scheme: 'light' | 'dark'; style: CSSProperties } {
  const read = useCallback(() => {
    const params = readTheme();
    const scheme = colorScheme(params);
    return { scheme, style: themeVariables(params, scheme) as CSSProperties };
  }, []);
  const [theme, setTheme] = useState(read);
  useEffect(() => {
    const onChange = () => setTheme(read());
    webApp()?.onEvent?.('themeChanged', onChange);
    return () => webApp()?.offEvent?.('themeChanged', onChange);
  }, [read]);
  useEffect(() => {
    const bg = (theme.style as Record<string, string>)['--tg-secondary-bg'] ?? '';
    document.body.style.background = bg;
    document.documentElement.style.colorScheme = theme.scheme;
    document.title = 'Loyalty';
  }, [theme]);
  return theme;
}

function SignedIn({ client }: { client: MiniAppClient }) {
  const session = useQuery({
    queryKey: ['miniapp', 'signin'],
    queryFn: () => client.signIn().then(() => true),
    retry: false,
    staleTime: Number.POSITIVE_INFINITY,
  });
  if (session.isError)
    return (
      <ProblemScreen
        problem={authProblemOf(session.error)}
        detail={session.error instanceof ApiError ? session.error.message : undefined}
      />
    );
  if (!session.data) return <Splash />;
  return <Home client={client} />;
}

function Splash() {
  const { t } = useI18n();
  return (
    <div className="ma-center" role="status">
      <span className="spinner" aria-hidden="true" />
      <span className="ma-hint">{t('miniapp.loading')}</span>
    </div>
  );
}

const PROBLEM_TEXT: Record<AuthProblem, { title: MessageKey; text: MessageKey }> = {
  no_telegram: { title: 'miniapp.noTelegramTitle', text: 'miniapp.noTelegramText' },
  no_merchant: { title: 'miniapp.noMerchantTitle', text: 'miniapp.noMerchantText' },
  invalid: { title: 'miniapp.invalidTitle', text: 'miniapp.invalidText' },
  not_registered: { title: 'miniapp.notRegisteredTitle', text: 'miniapp.notRegisteredText' },
  no_bot: { title: 'miniapp.noBotTitle', text: 'miniapp.noBotText' },
  network: { title: 'miniapp.networkTitle', text: 'miniapp.networkText' },
};

function ProblemScreen({ problem, detail }: { problem: AuthProblem; detail?: string }) {
  const { t } = useI18n();
  const text = PROBLEM_TEXT[problem];
  return (
    <div className="ma-center ma-problem" role="alert" data-testid="miniapp-error" data-problem={problem}>
      <div className="ma-problem-icon">
        <Icon name={problem === 'not_registered' ? 'customers' : 'alert'} size={28} />
      </div>
      <h1>{t(text.title)}</h1>
      <p className="ma-hint">{t(text.text)}</p>
      {detail && problem === 'invalid' ? <p className="ma-hint ma-small">{detail}</p> : null}
      <div className="ma-row">
        {problem === 'network' ? (
          <button type="button" className="ma-button" onClick={() => window.location.reload()}>
            {t('common.retry')}
          </button>
        ) : webApp()?.close ? (
          <button type="button" className="ma-button" onClick={() => webApp()?.close?.()}>
            {t('miniapp.backToChat')}
          </button>
        ) : null}
      </div>
      <LanguageSwitch />
    </div>
  );
}

function Home({ client }: { client: MiniAppClient }) {
  const i18n = useI18n();
  const { t } = i18n;
  const me = useQuery({ queryKey: ['miniapp', 'me'], queryFn: () => client.me(), refetchInterval: 30_000 });
  const [isCodeOpen, setCodeOpen] = useState(false);
  if (me.isError) return <ProblemScreen problem={authProblemOf(me.error)} detail={me.error.message} />;
  if (!me.data) return <Splash />;
  const data = me.data;
  return (
    <div className="ma-page">
      <header className="ma-header">
        <div>
          <div className="ma-merchant">{data.merchant.name}</div>
          <div className="ma-hint ma-small">{data.customer.name || data.customer.phone}</div>
        </div>
        <LanguageSwitch />
      </header>
      <BalanceCard me={data} />
      {isCodeOpen ? (
        <CodeCard client={client} onClose={() => setCodeOpen(false)} />
      ) : (
        <button
          type="button"
          className="ma-button ma-button-big"
          onClick={() => setCodeOpen(true)}
          data-testid="show-code"
        >
          <Icon name="qr" size={22} />
          {t('miniapp.myCode')}
        </button>
      )}
      {data.tier ? <TierCard tier={data.tier} /> : null}
      <Offers client={client} />
      <History client={client} />
      <ReferralCard code={data.referralCode} link={data.referralLink} />
      {data.customer.birthDate ? null : <BirthdayCard client={client} />}
      <p className="ma-hint ma-small ma-footnote">
        {t('miniapp.rules', {
          rate: i18n.percentBp(data.programme.earnRateBp),
          value: i18n.money(data.programme.pointValueMinor),
        })}
        {data.customer.birthDate ? (
          <span data-testid="miniapp-birthdate">
            {' · '}
            {t('miniapp.birthdaySet', { date: i18n.date(data.customer.birthDate) })}
          </span>
        ) : null}
      </p>
    </div>
  );
}

/** Asks for the date of birth until it is given (once: the shop corrects it after), for birthday gifts. */
function BirthdayCard({ client }: { client: MiniAppClient }) {
  const { t } = useI18n();
  const queries = useQueryClient();
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [isSaving, setSaving] = useState(false);
  const today = new Date().toISOString().slice(0, 10);
  const save = async () => {
    setSaving(true);
    setError(null);
    try {
      const me = await client.setBirthDate(value);
      queries.setQueryData(['miniapp', 'me'], me);
      void queries.invalidateQueries({ queryKey: ['miniapp', 'offers'] });
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setSaving(false);
    }
  };
  return (
    <section className="ma-card" aria-label={t('miniapp.birthdayTitle')} data-testid="miniapp-birthday">
      <div className="ma-title">{t('miniapp.birthdayTitle')}</div>
      <p className="ma-hint ma-small">{t('miniapp.birthdayText')}</p>
      <form
        className="ma-row-between ma-birthday"
        onSubmit={(event) => {
          event.preventDefault();
          if (value) void save();
        }}
      >
        <input
          type="date"
          className="ma-input"
          value={value}
          min="1900-01-01"
          max={today}
          required
          aria-label={t('miniapp.birthdayTitle')}
          onChange={(event) => setValue(event.target.value)}
        />
        <button type="submit" className="ma-button" disabled={!value || isSaving}>
          {t('miniapp.birthdaySave')}
        </button>
      </form>
      {error ? (
        <p className="ma-error" role="alert">
          {error}
        </p>
      ) : null}
      <p className="ma-hint ma-small">{t('miniapp.birthdayOnce')}</p>
    </section>
  );
}

function BalanceCard({ me }: { me: ClientMe }) {
  const i18n = useI18n();
  const { t } = i18n;
  return (
    <section className="ma-card ma-balance" aria-label={t('miniapp.balance')}>
      <div className="ma-hint ma-small">{t('miniapp.balance')}</div>
      <div className="ma-balance-value" data-testid="miniapp-balance">
        {i18n.num(me.balance.available)}
      </div>
      <div className="ma-hint">
        {i18n.pointsUnit(me.balance.available)} ≈{' '}
        {i18n.money(me.balance.available * me.programme.pointValueMinor)}
      </div>
      {me.balance.pending > 0 ? (
        <div className="ma-pending">{t('miniapp.pending', { points: i18n.points(me.balance.pending) })}</div>
      ) : null}
      {me.balance.held > 0 ? (
        <div className="ma-pending" data-testid="miniapp-held">
          {t('miniapp.held', { points: i18n.points(me.balance.held) })}
        </div>
      ) : null}
    </section>
  );
}

function TierCard({ tier }: { tier: NonNullable<ClientMe['tier']> }) {
  const i18n = useI18n();
  const { t } = i18n;
  const next = tier.next;
  return (
    <section className="ma-card" aria-label={t('miniapp.tier')}>
      <div className="ma-row-between">
        <div>
          <div className="ma-hint ma-small">{t('miniapp.tier')}</div>
          <div className="ma-title">{tier.name ?? t('miniapp.noTier')}</div>
        </div>
        <div className="ma-chip">{t('miniapp.cashback', { rate: i18n.percentBp(tier.earnRateBp) })}</div>
      </div>
      {next ? (
        <div className="ma-tier-progress">
          <ProgressBar
            value={tier.spend}
            max={next.minSpend}
            label={t('miniapp.toNext', { tier: next.name })}
          />
          <div className="ma-hint ma-small">
            {t('miniapp.remaining', { amount: i18n.money(next.remaining), tier: next.name })}
          </div>
        </div>
      ) : (
        <div className="ma-hint ma-small" style={{ marginTop: 8 }}>
          {t('miniapp.topTier')}
        </div>
      )}
    </section>
  );
}

/** Seconds left until `expiresAt`, re-rendering every second. Computed during render, so a new code
 * never reads as expired for a render (which would fetch yet another code). */
function useSecondsLeft(expiresAt: string | undefined): number {
  const [, setTick] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setTick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, []);
  return expiresAt ? Math.max(0, Math.ceil((new Date(expiresAt).getTime() - Date.now()) / 1000)) : 0;
}

function CodeCard({ client, onClose }: { client: MiniAppClient; onClose: () => void }) {
  const { t } = useI18n();
  const queries = useQueryClient();
  const [code, setCode] = useState<ClientCode | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [isAuto, setAuto] = useState(true);
  const [isLoading, setLoading] = useState(false);
  const left = useSecondsLeft(code?.expiresAt);
  // A new code replaces the customer's previous one on the server, so only the answer to the latest
  // request may be shown: an earlier answer arriving last would show a code that no longer works.
  const latest = useRef(0);
  const load = useCallback(async () => {
    const request = ++latest.current;
    setLoading(true);
    setError(null);
    try {
      const issued = await client.code();
      if (request !== latest.current) return;
      setCode(issued);
      webApp()?.HapticFeedback?.impactOccurred?.('light');
    } catch (failure) {
      if (request !== latest.current) return;
      setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      if (request === latest.current) setLoading(false);
    }
  }, [client]);
  useEffect(() => {
    void load();
  }, [load]);
  const isExpired = code !== null && left === 0;
  useEffect(() => {
    if (isExpired && isAuto && !isLoading) {
      void load();
      // The code may have been used at the till: the balance changed.
      void queries.invalidateQueries({ queryKey: ['miniapp'] });
    }
  }, [isExpired, isAuto, isLoading, load, queries]);
  const minutes = Math.floor(left / 60);
  const seconds = String(left % 60).padStart(2, '0');
  const share = code ? Math.min(1, left / code.ttlSeconds) : 0;
  return (
    <section className="ma-card ma-code" aria-label={t('miniapp.myCode')}>
      <div className="ma-row-between">
        <div className="ma-title">{t('miniapp.myCode')}</div>
        <button type="button" className="ma-link" onClick={onClose}>
          {t('miniapp.hideCode')}
        </button>
      </div>
      {error ? (
        <p className="ma-error" role="alert">
          {error}
        </p>
      ) : null}
      {code ? (
        <>
          <div
            className={`ma-digits ${isExpired ? 'ma-expired' : ''}`}
            data-testid="miniapp-code"
            data-code={code.code}
          >
            <span className="sr-only">{code.code.split('').join(' ')}</span>
            <span aria-hidden="true">{code.code.slice(0, 3)}</span>
            <span aria-hidden="true">{code.code.slice(3)}</span>
          </div>
          <div className="ma-qr">
            <QrImage text={code.code} alt={t('miniapp.qrAlt')} size={184} />
          </div>
          <div className="ma-countdown" aria-live="off">
            <div className="ma-countdown-bar">
              <div style={{ width: `${share * 100}%` }} />
            </div>
            <span data-testid="miniapp-countdown">
              {isExpired ? t('miniapp.expired') : t('miniapp.validFor', { time: `${minutes}:${seconds}` })}
            </span>
          </div>
          <p className="ma-hint ma-small">{t('miniapp.showCashier')}</p>
        </>
      ) : (
        <div className="ma-center" style={{ minHeight: 160 }}>
          <span className="spinner" aria-hidden="true" />
        </div>
      )}
      <div className="ma-row-between">
        <label className="ma-toggle">
          <input type="checkbox" checked={isAuto} onChange={(e) => setAuto(e.target.checked)} />
          {t('miniapp.autoRefresh')}
        </label>
        <button
          type="button"
          className="ma-button ma-button-secondary"
          disabled={isLoading}
          onClick={() => void load()}
        >
          <Icon name="refresh" size={16} />
          {t('miniapp.newCode')}
        </button>
      </div>
    </section>
  );
}

/** The merchant's offers the customer can still get, running now first. */
function Offers({ client }: { client: MiniAppClient }) {
  const i18n = useI18n();
  const { t } = i18n;
  const offers = useQuery({
    queryKey: ['miniapp', 'offers', i18n.locale],
    queryFn: () => client.offers(i18n.locale),
    refetchInterval: 60_000,
  });
  const items = offers.data?.offers ?? [];
  if (offers.isPending || (offers.isSuccess && items.length === 0)) return null;
  return (
    <section className="ma-card ma-history" aria-label={t('miniapp.offers')}>
      <div className="ma-title">{t('miniapp.offers')}</div>
      {offers.isError ? (
        <p className="ma-error">{offers.error.message}</p>
      ) : (
        <ul className="ma-list" data-testid="miniapp-offers">
          {items.map((offer) => (
            <li key={offer.id}>
              <div className="ma-list-main">
                <div>
                  {offer.name}
                  <span className="ma-badge">
                    {offer.isLiveNow ? t('miniapp.offerNow') : t('miniapp.offerSoon')}
                  </span>
                </div>
                <div className="ma-hint ma-small ma-wrap">
                  {offer.description}
                  {offer.endsAt ? ` · ${t('miniapp.offerUntil', { date: i18n.date(offer.endsAt) })}` : ''}
                </div>
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Why a purchase earned what it did: its lines (base, tier, campaigns), folded until asked for. */
function Breakdown({ lines }: { lines: NonNullable<ClientEntry['earnBreakdown']> }) {
  const i18n = useI18n();
  const { t } = i18n;
  const total = lines.reduce((sum, line) => sum + line.points, 0);
  return (
    <details className="ma-breakdown" data-testid="miniapp-breakdown">
      <summary className="ma-small">{t('miniapp.breakdown', { points: i18n.points(total) })}</summary>
      <ul>
        {lines
          .filter((line) => line.points !== 0)
          .map((line) => (
            <li key={`${line.source}-${line.campaignId ?? line.name}`}>
              <span>
                {line.source === 'base'
                  ? t('miniapp.breakdownBase')
                  : line.source === 'tier'
                    ? t('miniapp.breakdownTier', { tier: line.name })
                    : line.name}
              </span>
              <span className="ma-plus">+{i18n.num(line.points)}</span>
            </li>
          ))}
      </ul>
    </details>
  );
}

function History({ client }: { client: MiniAppClient }) {
  const i18n = useI18n();
  const { t } = i18n;
  const kindLabel = useLabel('ledger.kind');
  const history = useQuery({
    queryKey: ['miniapp', 'history'],
    queryFn: () => client.history(),
    refetchInterval: 30_000,
  });
  // A hold's entries of the held bucket mirror its available ones: the customer sees one line.
  const items = (history.data?.items ?? []).filter((entry) => entry.bucket !== 'held');
  // A purchase's breakdown shows once, on its newest earn entry with campaign or tier lines.
  const breakdownOwners = new Set<number>();
  const explained = new Set<string>();
  for (const entry of items) {
    const lines = entry.earnBreakdown;
    if (entry.kind !== 'earn' || !entry.purchaseId || !lines || explained.has(entry.purchaseId)) continue;
    if (!lines.some((line) => line.source !== 'base')) continue;
    explained.add(entry.purchaseId);
    breakdownOwners.add(entry.id);
  }
  return (
    <section className="ma-card ma-history" aria-label={t('miniapp.history')}>
      <div className="ma-title">{t('miniapp.history')}</div>
      {history.isError ? (
        <p className="ma-error">{history.error.message}</p>
      ) : history.isPending ? (
        <div className="ma-center" style={{ minHeight: 80 }}>
          <span className="spinner" aria-hidden="true" />
        </div>
      ) : items.length === 0 ? (
        <p className="ma-hint">{t('miniapp.noHistory')}</p>
      ) : (
        <ul className="ma-list" data-testid="miniapp-history">
          {items.map((entry) => (
            <li key={entry.id} className={breakdownOwners.has(entry.id) ? 'ma-with-breakdown' : undefined}>
              <div className="ma-list-main">
                <div>
                  {kindLabel(entry.kind)}
                  {entry.bucket === 'pending' ? (
                    <span className="ma-badge">{t('ledger.pending')}</span>
                  ) : null}
                </div>
                <div className="ma-hint ma-small">
                  {i18n.dateTime(entry.createdAt)}
                  {entry.orderId ? ` · ${t('miniapp.order', { id: entry.orderId })}` : ''}
                  {entry.reason && !entry.orderId ? ` · ${entry.reason}` : ''}
                </div>
                {breakdownOwners.has(entry.id) && entry.earnBreakdown ? (
                  <Breakdown lines={entry.earnBreakdown} />
                ) : null}
              </div>
              <div className={`ma-points ${entry.points > 0 ? 'ma-plus' : 'ma-minus'}`}>
                {entry.points > 0 ? '+' : '−'}
                {i18n.num(Math.abs(entry.points))}
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
