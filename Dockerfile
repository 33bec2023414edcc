# The portal's image: one image for web, worker and beat (docs/deploy.md). Not built on the
# machine this project is developed on (no container runtime there); the same commands run
# there without it (config/tests/test_deploy.py).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORTAL_VAR_DIR=/var/lib/portal DJANGO_STATIC_ROOT=/app/staticfiles
WORKDIR /app
RUN useradd --system --home /var/lib/portal portal && mkdir -p /var/lib/portal && chown portal /var/lib/portal
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Hashed static files are collected at build time; whitenoise serves them (no settings beyond the mode).
RUN DJANGO_PRODUCTION=true DJANGO_SECRET_KEY=collectstatic-only-not-a-real-key-0123456789abcdef \
    FIELD_ENCRYPTION_KEY=collectstatic-only-not-a-real-key-fedcba9876543210 \
    python manage.py collectstatic --no-input --skip-checks
USER portal
EXPOSE 8000
CMD ["gunicorn", "config.wsgi"]
