import { useI18n } from '../i18n';
import { webApp } from './telegram';

/** The share dialog of Telegram for a link (t.me/share/url). */
export function shareUrl(link: string, text: string): string {
  return `https://t.me/share/url?url=${encodeURIComponent(link)}&text=${encodeURIComponent(text)}`;
}

/**
 * The customer's referral code and link, with a share button that opens Telegram's share dialog.
 * Without a link (the merchant's bot username is unknown) the code alone is shown, for the till.
 */
export function ReferralCard({ code, link }: { code: string; link: string | null }) {
  const { t } = useI18n();
  const share = () => {
    if (!link) return;
    const url = shareUrl(link, t('miniapp.referral.shareText'));
    const app = webApp();
    if (app?.openTelegramLink) app.openTelegramLink(url);
    else window.open(url, '_blank', 'noopener');
  };
  return (
    <section className="ma-card" aria-label={t('miniapp.referral.title')} data-testid="miniapp-referral">
      <div className="ma-hint ma-small">{t('miniapp.referral.title')}</div>
      <p>{t('miniapp.referral.text')}</p>
      <div className="ma-row">
        <span className="ma-hint ma-small">{t('miniapp.referral.code')}</span>{' '}
        <strong data-testid="miniapp-referral-code">{code}</strong>
      </div>
      {link ? (
        <button type="button" className="ma-button" onClick={share} data-testid="miniapp-referral-share">
          {t('miniapp.referral.share')}
        </button>
      ) : null}
    </section>
  );
}
