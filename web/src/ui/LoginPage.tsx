import { type FormEvent, useEffect, useState } from 'react';
import { useI18n } from '../i18n';
import { ApiError, type AuthClient } from '../lib/api';
import { Button, Callout, LanguageSwitch, TextField } from './components';
import { Icon } from './icons';

/** Email and password sign-in for the portal or the admin panel. */
export function LoginPage({
  client,
  title,
  subtitle,
}: {
  client: AuthClient;
  title: string;
  subtitle: string;
}) {
  const { t } = useI18n();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [isBusy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // One email and password that open accounts at several merchants: the person picks one.
  const [merchants, setMerchants] = useState<Array<{ id: string; name: string }> | null>(null);
  useEffect(() => {
    document.title = `${title} · Loyalty`;
  }, [title]);

  const signIn = async (merchantId?: string) => {
    setBusy(true);
    setError(null);
    try {
      await client.login(email, password, merchantId);
    } catch (failure) {
      if (failure instanceof ApiError && failure.code === 'merchant_required') {
        const details = failure.details as { merchants?: Array<{ id: string; name: string }> } | undefined;
        setMerchants(details?.merchants ?? []);
      } else if (failure instanceof ApiError && failure.code === 'invalid_credentials')
        setError(t('auth.invalid'));
      else if (failure instanceof ApiError && failure.code === 'rate_limited')
        setError(t('auth.rateLimited'));
      else setError(failure instanceof Error ? failure.message : t('error.generic'));
      setBusy(false);
    }
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setMerchants(null);
    void signIn();
  };

  return (
    <div className="auth-page">
      <div className="card auth-card">
        <div className="row-between" style={{ alignItems: 'flex-start' }}>
          <div className="brand">
            <div className="brand-mark" style={{ color: '#fff' }}>
              <Icon name="programme" size={18} />
            </div>
            <div>
              <div className="brand-name">{title}</div>
              <div className="brand-sub">{subtitle}</div>
            </div>
          </div>
          <LanguageSwitch />
        </div>
        <form className="stack" onSubmit={submit} noValidate>
          <h1 style={{ fontSize: 20 }}>{t('auth.title')}</h1>
          {error ? <Callout tone="danger">{error}</Callout> : null}
          <TextField
            label={t('auth.email')}
            type="email"
            name="email"
            autoComplete="username"
            inputMode="email"
            value={email}
            onChange={setEmail}
            required
            autoFocus
          />
          <TextField
            label={t('auth.password')}
            type="password"
            name="password"
            autoComplete="current-password"
            value={password}
            onChange={setPassword}
            required
          />
          <Button type="submit" variant="primary" block busy={isBusy} disabled={!email || !password}>
            {t('auth.submit')}
          </Button>
          {merchants ? (
            <div className="stack">
              <Callout tone="info">{t('auth.chooseMerchant')}</Callout>
              {merchants.map((merchant) => (
                <Button key={merchant.id} block busy={isBusy} onClick={() => void signIn(merchant.id)}>
                  {merchant.name}
                </Button>
              ))}
            </div>
          ) : null}
        </form>
      </div>
    </div>
  );
}
