// Reference data for generated shipments. Deliberately includes non-ASCII names and cities
// (Zoë, Łódź, Göteborg, 東京) so consumers are tested on UTF-8 end to end.

export const FIRST_NAMES = [
  'Zoë', 'Łukasz', 'Björn', 'Ana', 'Jürgen', 'Søren', 'María', 'Chloé', 'Wei', 'Yuki',
  'Olivia', 'Noah', 'Émile', 'Inès', 'Håkan', 'Aiko', 'Grzegorz', 'Siobhán', 'James', 'Fatima',
];

export const LAST_NAMES = [
  'Müller', 'Kowalski', 'Andersson', 'García', 'Østergaard', 'Dubois', 'Nakamura', 'Smith',
  'Nguyen', 'Łęcki', 'Johansson', 'Rossi', "O'Brien", 'van der Berg', '山田', 'Şahin', 'Novák',
];

// cc = ISO 3166-1 alpha-2, country = English name (the legacy record uses names)
export const CITIES = [
  { city: 'Łódź', cc: 'PL', country: 'Poland', lat: 51.7592, lon: 19.456, zip: () => '9#-###', streets: ['ul. Piotrkowska', 'ul. Zielona', 'al. Kościuszki'] },
  { city: 'Kraków', cc: 'PL', country: 'Poland', lat: 50.0647, lon: 19.945, zip: () => '3#-###', streets: ['ul. Floriańska', 'ul. Długa'] },
  { city: 'Göteborg', cc: 'SE', country: 'Sweden', lat: 57.7089, lon: 11.9746, zip: () => '4## ##', streets: ['Kungsportsavenyen', 'Vasagatan', 'Östra Hamngatan'] },
  { city: 'Malmö', cc: 'SE', country: 'Sweden', lat: 55.605, lon: 13.0038, zip: () => '2## ##', streets: ['Södergatan', 'Stortorget'] },
  { city: 'Århus', cc: 'DK', country: 'Denmark', lat: 56.1629, lon: 10.2039, zip: () => '8###', streets: ['Søndergade', 'Åboulevarden'] },
  { city: 'München', cc: 'DE', country: 'Germany', lat: 48.1351, lon: 11.582, zip: () => '8####', streets: ['Maximilianstraße', 'Schäfflerstraße'] },
  { city: 'Zürich', cc: 'CH', country: 'Switzerland', lat: 47.3769, lon: 8.5417, zip: () => '80##', streets: ['Bahnhofstrasse', 'Limmatquai'] },
  { city: 'Paris', cc: 'FR', country: 'France', lat: 48.8566, lon: 2.3522, zip: () => '750##', streets: ['Rue de Rivoli', 'Boulevard Saint-Germain'] },
  { city: 'Reykjavík', cc: 'IS', country: 'Iceland', lat: 64.1466, lon: -21.9426, zip: () => '1##', streets: ['Laugavegur', 'Skólavörðustígur'] },
  { city: '東京', cc: 'JP', country: 'Japan', lat: 35.6762, lon: 139.6503, zip: () => '1##-####', streets: ['銀座', '丸の内'] },
  { city: 'São Paulo', cc: 'BR', country: 'Brazil', lat: -23.5505, lon: -46.6333, zip: () => '0####-###', streets: ['Avenida Paulista', 'Rua Augusta'] },
  { city: 'New York', cc: 'US', country: 'United States', lat: 40.7128, lon: -74.006, zip: () => '100##', streets: ['Broadway', '5th Avenue'] },
  { city: 'Montréal', cc: 'CA', country: 'Canada', lat: 45.5019, lon: -73.5674, zip: () => 'H#A #B#', streets: ['Rue Sainte-Catherine', 'Boulevard Saint-Laurent'] },
  { city: 'Oslo', cc: 'NO', country: 'Norway', lat: 59.9139, lon: 10.7522, zip: () => '0###', streets: ['Karl Johans gate', 'Bogstadveien'] },
];

export const PRODUCTS = [
  'Books', 'Kaffeebohnen 1 kg', 'Ceramic mug', 'Électronique', 'お茶 (green tea)', 'Wool socks',
  'Bike parts', 'Skärbräda', 'Phone case', 'Żubrówka glasses', 'LEGO set', 'Printer toner',
];

export const EVENT_NOTES = [
  'Left at front door', 'Recipient not home', 'Weather delay', 'Adresse unvollständig',
  'Delivered to neighbour', 'Sorted at hub', 'Customs cleared', 'Paket beschädigt',
];

export const EMAIL_DOMAINS = ['example.com', 'mail.example.org', 'post.example.net'];
